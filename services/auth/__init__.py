"""The auth service: accounts, sessions, tokens (RS256 JWTs), MFA and tenant access grants."""
