"""The shared GraphQL kit every BFF subgraph is built from."""
