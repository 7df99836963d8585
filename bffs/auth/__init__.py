"""Auth BFF (4001): registration, login and tokens, password reset, MFA, and ``me``."""
