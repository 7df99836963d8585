"""The auth subgraph's types: tokens, the session's view of the caller, MFA and password
results; references to the User and Tenant entities (owned by the user and tenant subgraphs)
and to operations (owned by the workflow subgraph)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from pydantic import BaseModel
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from contracts.auth import NO_TENANT
from graph.types import OperationRef

# Wire models (the auth service's JSON) ----------------------------------------------------------


class UserSummaryData(BaseModel):
    id: str
    email: str


class TokenData(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int
    session_id: str
    user: UserSummaryData
    tenant_id: str
    roles: list[str]


class OperationStartedData(BaseModel):
    operation_id: str


class VerifyData(BaseModel):
    user_id: str
    status: str
    operation_id: str | None = None


class PasswordResetDoneData(BaseModel):
    status: str
    sessions_revoked: int | None = None
    operation_id: str | None = None


class MfaSetupData(BaseModel):
    operation_id: str
    secret: str
    otpauth_uri: str
    expires_at: datetime


class MfaConfirmedData(BaseModel):
    mfa_enabled: bool
    recovery_codes: list[str]
    operation_id: str | None = None


class AuthUserData(BaseModel):
    id: str
    email: str
    status: str
    email_verified_at: datetime | None = None
    mfa_enabled: bool = False


class GrantData(BaseModel):
    user_id: str
    tenant_id: str
    roles: list[str]
    status: str


class MeData(BaseModel):
    user: AuthUserData
    tenant_id: str
    roles: list[str]
    session_id: str
    tenants: list[GrantData]


def tenant_or_none(tenant_id: str) -> strawberry.ID | None:
    """A session without a tenant yet (a user who belongs to none) carries a marker."""
    return None if tenant_id == NO_TENANT else strawberry.ID(tenant_id)


# Entity references -----------------------------------------------------------------------------


@strawberry.federation.type(name="User", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class UserRef:
    """A reference to a user; the user subgraph owns its fields."""

    id: strawberry.ID


@strawberry.federation.type(name="Tenant", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class TenantRef:
    """A reference to a tenant; the tenant subgraph owns its fields."""

    id: strawberry.ID


# GraphQL types -------------------------------------------------------------------------------


@strawberry.enum
class AccountStatus(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    INVITED = "invited"


@strawberry.enum
class TenantAccessStatus(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@strawberry.input
class RegisterInput:
    email: str
    password: str


@strawberry.type(description="A signed-in session: tokens and who they speak for.")
class AuthPayload:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds the access token is valid for.")
    token_type: str
    session_id: strawberry.ID
    user: UserRef
    email: str
    tenant_id: strawberry.ID | None = strawberry.field(
        description="Null while the user belongs to no tenant."
    )
    roles: list[str]

    @strawberry.field
    def tenant(self) -> TenantRef | None:
        return TenantRef(id=self.tenant_id) if self.tenant_id else None

    @classmethod
    def of(cls, data: TokenData) -> AuthPayload:
        return cls(
            access_token=data.access_token,
            refresh_token=data.refresh_token,
            expires_in=data.expires_in,
            token_type=data.token_type,
            session_id=strawberry.ID(data.session_id),
            user=UserRef(id=strawberry.ID(data.user.id)),
            email=data.user.email,
            tenant_id=tenant_or_none(data.tenant_id),
            roles=list(data.roles),
        )


@strawberry.type
class TenantAccess:
    tenant_id: strawberry.ID
    roles: list[str]
    status: TenantAccessStatus

    @strawberry.field
    def tenant(self) -> TenantRef:
        return TenantRef(id=self.tenant_id)


@strawberry.type(description="The caller's session: the user, the tenant it acts in, its roles.")
class Me:
    user: UserRef
    email: str
    status: AccountStatus
    email_verified: bool
    mfa_enabled: bool
    session_id: strawberry.ID
    tenant_id: strawberry.ID | None
    roles: list[str] = strawberry.field(description="Roles in the current tenant.")
    tenants: list[TenantAccess] = strawberry.field(description="Every tenant the user may use.")

    @strawberry.field
    def tenant(self) -> TenantRef | None:
        return TenantRef(id=self.tenant_id) if self.tenant_id else None

    @classmethod
    def of(cls, data: MeData) -> Me:
        return cls(
            user=UserRef(id=strawberry.ID(data.user.id)),
            email=data.user.email,
            status=AccountStatus(data.user.status),
            email_verified=data.user.email_verified_at is not None,
            mfa_enabled=data.user.mfa_enabled,
            session_id=strawberry.ID(data.session_id),
            tenant_id=tenant_or_none(data.tenant_id),
            roles=list(data.roles),
            tenants=[
                TenantAccess(
                    tenant_id=strawberry.ID(grant.tenant_id),
                    roles=list(grant.roles),
                    status=TenantAccessStatus(grant.status),
                )
                for grant in data.tenants
            ],
        )


@strawberry.type
class VerifyEmailPayload:
    user_id: strawberry.ID
    status: str = strawberry.field(
        description='Either "active" (verified) or "verifying" (the registration is finishing).'
    )
    operation: OperationRef | None

    @classmethod
    def of(cls, data: VerifyData) -> VerifyEmailPayload:
        return cls(
            user_id=strawberry.ID(data.user_id),
            status=data.status,
            operation=OperationRef.of(data.operation_id) if data.operation_id else None,
        )


@strawberry.type
class PasswordResetPayload:
    status: str
    sessions_revoked: int | None = strawberry.field(
        description="Sessions ended by the reset (null while the reset finishes)."
    )
    operation: OperationRef | None

    @classmethod
    def of(cls, data: PasswordResetDoneData) -> PasswordResetPayload:
        return cls(
            status=data.status,
            sessions_revoked=data.sessions_revoked,
            operation=OperationRef.of(data.operation_id) if data.operation_id else None,
        )


@strawberry.type(
    description="The mfa_setup operation and the TOTP secret, shown this once: the "
    "authenticator app needs it to produce the code confirmMfa takes."
)
class MfaSetupPayload:
    operation: OperationRef
    secret: str
    otpauth_uri: str
    expires_at: datetime

    @classmethod
    def of(cls, data: MfaSetupData) -> MfaSetupPayload:
        return cls(
            operation=OperationRef.of(data.operation_id),
            secret=data.secret,
            otpauth_uri=data.otpauth_uri,
            expires_at=data.expires_at,
        )


@strawberry.type
class MfaConfirmPayload:
    mfa_enabled: bool = strawberry.field(
        description="False while the code is still being checked (then the codes below count "
        "once the operation completes)."
    )
    recovery_codes: list[str] = strawberry.field(description="Shown this once.")
    operation: OperationRef | None

    @classmethod
    def of(cls, data: MfaConfirmedData) -> MfaConfirmPayload:
        return cls(
            mfa_enabled=data.mfa_enabled,
            recovery_codes=list(data.recovery_codes),
            operation=OperationRef.of(data.operation_id) if data.operation_id else None,
        )
