"""The Temporal client layer every BFF and the gateway use: connect with encryption and
identity propagation, then typed operations on workflows (see ``operations``)."""
