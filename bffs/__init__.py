"""The BFF subgraphs: auth, tenant, file, user, workflow — one Strawberry subgraph each."""
