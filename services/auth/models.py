"""The auth service's HTTP boundary and store rows."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.auth import (
    DEFAULT_MFA_MAX_ATTEMPTS,
    DEFAULT_MFA_SETUP_EXPIRY_SECONDS,
    DEFAULT_PASSWORD_RESET_EXPIRY_SECONDS,
    DEFAULT_REGISTRATION_EXPIRY_SECONDS,
    AuthUser,
    GrantStatus,
    Permission,
    TenantGrant,
    UserStatus,
)

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256
# Deliberately loose (the verification email is the real check); no email-validator dependency.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"


def utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class AuthPolicy(BaseModel):
    """Timeouts the HTTP side puts into workflow inputs (tests shorten them)."""

    registration_expires_in_seconds: int = Field(default=DEFAULT_REGISTRATION_EXPIRY_SECONDS, ge=1)
    password_reset_expires_in_seconds: int = Field(
        default=DEFAULT_PASSWORD_RESET_EXPIRY_SECONDS, ge=1
    )
    mfa_setup_expires_in_seconds: int = Field(default=DEFAULT_MFA_SETUP_EXPIRY_SECONDS, ge=1)
    mfa_max_attempts: int = Field(default=DEFAULT_MFA_MAX_ATTEMPTS, ge=1)
    # How long an endpoint waits for a workflow it signalled before answering 202.
    wait_seconds: float = Field(default=10.0, gt=0)
    # Lifetime of the code a workflow-created session is exchanged with.
    exchange_code_seconds: int = Field(default=300, ge=1)


# Requests ------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterRequest(_Request):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class VerifyRequest(_Request):
    token: str = Field(min_length=1, max_length=200)


class LoginRequest(_Request):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    tenant_id: str | None = Field(default=None, min_length=1, max_length=128)
    totp_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    recovery_code: str | None = Field(default=None, min_length=1, max_length=64)


class ReauthenticateRequest(_Request):
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    totp_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    recovery_code: str | None = Field(default=None, min_length=1, max_length=64)


class Reauthenticated(BaseModel):
    """A single-use proof that the caller just gave their password (and second factor)."""

    reauthentication: str
    expires_at: datetime


class RefreshRequest(_Request):
    refresh_token: str = Field(min_length=1, max_length=4096)


class ExchangeRequest(_Request):
    code: str = Field(min_length=1, max_length=200)


class PasswordResetRequest(_Request):
    email: str = Field(min_length=1, max_length=320)


class PasswordResetConfirm(_Request):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class MfaConfirmRequest(_Request):
    code: str = Field(pattern=r"^[0-9]{6}$")


class PermissionCheckRequest(_Request):
    permission: Permission


# Responses ---------------------------------------------------------------------------------


class OperationStarted(BaseModel):
    operation_id: str


class UserSummary(BaseModel):
    id: str
    email: str


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int
    session_id: str
    user: UserSummary
    tenant_id: str
    roles: list[str]


class VerifyResponse(BaseModel):
    user_id: str
    status: str
    operation_id: str | None = None


class PasswordResetDone(BaseModel):
    status: str
    sessions_revoked: int | None = None
    operation_id: str | None = None


class MfaSetupChallenge(BaseModel):
    """A pending MFA setup: its mfa_setup operation and the TOTP secret (the authenticator
    app's input) until ``expires_at``. Only its owner ever gets it; the workflow never sees
    the secret, only its id."""

    operation_id: str
    secret: str
    otpauth_uri: str
    expires_at: datetime


class MfaConfirmed(BaseModel):
    mfa_enabled: bool
    # Shown once; only their hashes are stored.
    recovery_codes: list[str]
    operation_id: str | None = None


class SessionView(BaseModel):
    id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    last_refreshed_at: datetime | None
    user_agent: str | None
    current: bool


class Me(BaseModel):
    user: AuthUser
    tenant_id: str
    roles: list[str]
    session_id: str
    tenants: list[TenantGrant]


class SessionState(BaseModel):
    """What the gateway and the BFFs ask about the session of a token they verified."""

    session_id: str
    open: bool
    # Seconds since it ended (revoked or expired); None while open.
    ended_seconds_ago: float | None
    # The roles the user's grant in the token's tenant has now (none unless active).
    roles: list[str]


class PermissionAnswer(BaseModel):
    permission: Permission
    allowed: bool
    tenant_id: str
    roles: list[str]


# Store rows ----------------------------------------------------------------------------------


class UserRow(BaseModel):
    id: str
    email: str
    password_hash: str
    status: UserStatus
    email_verified_at: datetime | None
    mfa_enabled: bool
    created_at: datetime
    updated_at: datetime

    @field_validator("email_verified_at", "created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value else value

    def public(self) -> AuthUser:
        return AuthUser(
            id=self.id,
            email=self.email,
            status=self.status,
            email_verified_at=self.email_verified_at,
            mfa_enabled=self.mfa_enabled,
        )


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose name)
    SESSION_EXCHANGE = "session_exchange"
    # A fresh proof of the password (and second factor) for an act that cannot be undone.
    REAUTHENTICATION = "reauthentication"


class TokenRow(BaseModel):
    id: str
    user_id: str
    purpose: TokenPurpose
    token_hash: str
    workflow_id: str | None
    subject_id: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None

    @field_validator("created_at", "expires_at", "used_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value else value

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and self.expires_at > now


class MfaSecretStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISCARDED = "discarded"


class MfaSecretRow(BaseModel):
    id: str
    user_id: str
    secret_ciphertext: str
    status: MfaSecretStatus
    workflow_id: str | None
    created_at: datetime
    confirmed_at: datetime | None
    last_used_step: int

    @field_validator("created_at", "confirmed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value else value


class GrantRow(BaseModel):
    user_id: str
    tenant_id: str
    roles: list[str]
    status: GrantStatus

    def public(self) -> TenantGrant:
        return TenantGrant(
            user_id=self.user_id, tenant_id=self.tenant_id, roles=self.roles, status=self.status
        )


class SessionRecord(BaseModel):
    """A session: in Redis when configured, in the database otherwise."""

    id: str
    user_id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    # SHA-256 of the current refresh token; "" until a workflow-created session is exchanged.
    refresh_token_hash: str = ""
    user_agent: str | None = None
    refreshed_at: datetime | None = None

    @field_validator("created_at", "expires_at", "revoked_at", "refreshed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value else value

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
