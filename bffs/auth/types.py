"""The auth subgraph's types: tokens, the session's view of the caller, MFA and password
results; the User entity's id and email (the rest of a User comes from the user subgraph), a
reference to the Tenant entity (owned by the tenant subgraph), and the Operation entity
(owned by the workflow subgraph) with the one field auth adds to it, ``mfaSetup``."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from pydantic import BaseModel
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.types import Info

from contracts.auth import NO_TENANT
from contracts.names import WorkflowType
from gateway_client import GatewayError, GatewayNotFound
from graph.context import GraphContext
from graph.errors import from_gateway_error
from workflow_client.errors import InvalidOperationId
from workflow_client.operations import check_operation_id, operation_id_prefix

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
    """A pending MFA setup (``/api/auth/mfa/setup``, POST and GET)."""

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


# Entities -----------------------------------------------------------------------------------


@strawberry.federation.type(name="User", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class User:
    """A user; the user subgraph owns it. The id and email of the account a session is for
    (login, refreshToken, me) this subgraph answers itself, so they need no token. Not
    resolvable here: for any other User the router asks the user subgraph, which shows only
    users of the caller's tenant (the auth service knows every account)."""

    id: strawberry.ID = strawberry.federation.field(shareable=True)
    email: str = strawberry.federation.field(shareable=True)


@strawberry.federation.type(name="Tenant", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class TenantRef:
    """A reference to a tenant; the tenant subgraph owns its fields."""

    id: strawberry.ID


@strawberry.type(
    description="The TOTP secret of an MFA setup waiting for its code: what the authenticator "
    "app needs to produce the code confirmMfa takes."
)
class MfaSetupChallenge:
    secret: str
    otpauth_uri: str = strawberry.field(description="The secret as an otpauth:// URI (QR code).")
    expires_at: datetime = strawberry.field(description="confirmMfa must come before this.")

    @classmethod
    def of(cls, data: MfaSetupData) -> MfaSetupChallenge:
        return cls(secret=data.secret, otpauth_uri=data.otpauth_uri, expires_at=data.expires_at)


@strawberry.federation.type(name="Operation", keys=["id"])
class Operation:
    """An operation; the workflow subgraph owns it (status, progress, result...). The auth
    subgraph adds ``mfaSetup``, and the router asks it for that field by the operation's id."""

    id: strawberry.ID
    # setupMfa has the challenge at hand (the POST's answer): no second call for it.
    challenge: strawberry.Private[MfaSetupData | None] = None

    @classmethod
    def of(cls, operation_id: str) -> Operation:
        return cls(id=strawberry.ID(operation_id))

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Operation:
        # Nothing to load for the id; ``mfaSetup`` loads what it needs when asked for.
        return cls(id=id)

    @strawberry.field(
        description="The TOTP secret while this is the caller's own mfa_setup operation and it "
        "waits for confirmMfa (until its expiresAt); null for any other operation, and once the "
        "setup is confirmed, replaced, failed, cancelled or expired."
    )
    async def mfa_setup(self, info: Info[GraphContext, Any]) -> MfaSetupChallenge | None:
        if self.challenge is not None:
            return MfaSetupChallenge.of(self.challenge)
        found = await pending_mfa_setup(info.context, str(self.id))
        return MfaSetupChallenge.of(found) if found is not None else None


MFA_SETUP_LOADER = "auth.pending_mfa_setup"


async def pending_mfa_setup(context: GraphContext, operation_id: str) -> MfaSetupData | None:
    """The caller's pending MFA setup if ``operation_id`` is its operation. Asks the auth
    service (``GET /api/auth/mfa/setup``, once per request) only for a well-formed mfa_setup id
    of the caller's own, and only for a signed-in caller."""
    try:
        check_operation_id(operation_id)
    except InvalidOperationId:
        return None
    if not operation_id.startswith(f"{WorkflowType.MFA_SETUP.value}-"):
        return None
    who = await context.identity()
    if who is None or not operation_id.startswith(
        operation_id_prefix(WorkflowType.MFA_SETUP.value, who)
    ):
        return None

    async def load(operation_ids: list[str]) -> list[MfaSetupData | None]:
        try:
            data = await context.deps.gateway.get_json(
                who,
                "/api/auth/mfa/setup",
                token=context.token,
                correlation_id=context.correlation_id,
            )
        except GatewayNotFound:
            return [None] * len(operation_ids)
        except GatewayError as error:
            raise from_gateway_error(error) from error
        pending = MfaSetupData.model_validate(data)
        return [pending if pending.operation_id == wanted else None for wanted in operation_ids]

    found: MfaSetupData | None = await context.loader(MFA_SETUP_LOADER, load).load(operation_id)
    return found


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
    user: User
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
            user=User(id=strawberry.ID(data.user.id), email=data.user.email),
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
    user: User
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
            user=User(id=strawberry.ID(data.user.id), email=data.user.email),
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
    operation: Operation | None

    @classmethod
    def of(cls, data: VerifyData) -> VerifyEmailPayload:
        return cls(
            user_id=strawberry.ID(data.user_id),
            status=data.status,
            operation=Operation.of(data.operation_id) if data.operation_id else None,
        )


@strawberry.type
class PasswordResetPayload:
    status: str
    sessions_revoked: int | None = strawberry.field(
        description="Sessions ended by the reset (null while the reset finishes)."
    )
    operation: Operation | None

    @classmethod
    def of(cls, data: PasswordResetDoneData) -> PasswordResetPayload:
        return cls(
            status=data.status,
            sessions_revoked=data.sessions_revoked,
            operation=Operation.of(data.operation_id) if data.operation_id else None,
        )


@strawberry.type
class MfaConfirmPayload:
    mfa_enabled: bool = strawberry.field(
        description="False while the code is still being checked (then the codes below count "
        "once the operation completes)."
    )
    recovery_codes: list[str] = strawberry.field(description="Shown this once.")
    operation: Operation | None

    @classmethod
    def of(cls, data: MfaConfirmedData) -> MfaConfirmPayload:
        return cls(
            mfa_enabled=data.mfa_enabled,
            recovery_codes=list(data.recovery_codes),
            operation=Operation.of(data.operation_id) if data.operation_id else None,
        )
