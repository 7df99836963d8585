"""The tenant service: tenants, memberships, roles, billing, and the tenant sagas."""
