"""File BFF (4003): the caller's files, uploads (GraphQL multipart, streamed to the file
service), sharing and deletion."""
