"""Tenant BFF (4002): the caller's tenants, the tenant overview, members, switching and
plan changes."""
