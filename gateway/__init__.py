"""The API gateway (8080): direct routes to the services and workflow endpoints."""
