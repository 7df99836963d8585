"""The auth service's names and models on the wire: its activities (other services' workflows
call them by name on ``TaskQueue.AUTH``), its workflows' inputs and results, its signals and
queries, and the role -> permission map every service checks against.

Secrets never travel through these models in plaintext: no password or password hash, no TOTP
secret, no recovery code, no access or refresh token. Workflows carry ids and hashes; the auth
store keeps the secrets (hashed, or encrypted at rest). The one exception is
``CreatedSession.exchange_code``: single use and valid for minutes, so a copy in (encrypted)
history is worthless soon after.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.activities import ActivityRef
from contracts.names import TaskQueue
from contracts.tenant import UserDataErased, UserDataExport, UserDataRequest

# Pre-authentication operations (registration, password reset) act in no tenant: they are
# started under this pseudo tenant (a valid search-attribute value that is never a tenant slug).
ANONYMOUS_TENANT = "_anonymous"
# The tenant of a session whose user has no tenant yet (e.g. right after registration).
NO_TENANT = "_none"
# The user segment of every password_reset operation id, whether the address has an account or
# not: the id must not tell which (no account enumeration).
ANONYMOUS_USER = "anonymous"

DEFAULT_REGISTRATION_EXPIRY_SECONDS = 24 * 3600
DEFAULT_PASSWORD_RESET_EXPIRY_SECONDS = 30 * 60
DEFAULT_MFA_SETUP_EXPIRY_SECONDS = 10 * 60
DEFAULT_MFA_MAX_ATTEMPTS = 5
RECOVERY_CODE_COUNT = 10


class AuthActivity(StrEnum):
    # For other services' workflows (tenant switching, onboarding, deactivation, suspension).
    VALIDATE_CREDENTIALS = "auth.validate_credentials"
    CREATE_SESSION = "auth.create_session"
    INVALIDATE_SESSION = "auth.invalidate_session"
    CHECK_PERMISSIONS = "auth.check_permissions"
    ROLLBACK_SESSION_CREATION = "auth.rollback_session_creation"  # compensates create_session
    RESTORE_PREVIOUS_SESSION = "auth.restore_previous_session"  # compensates invalidate_session
    REVOKE_USER_SESSIONS = "auth.revoke_user_sessions"
    GRANT_TENANT_ACCESS = "auth.grant_tenant_access"
    REVOKE_TENANT_ACCESS = "auth.revoke_tenant_access"
    GET_USER = "auth.get_user"
    SET_ACCOUNT_STATUS = "auth.set_account_status"
    # Steps of the auth service's own workflows.
    SEND_VERIFICATION_EMAIL = "auth.send_verification_email"
    VERIFY_EMAIL_TOKEN = "auth.verify_email_token"  # noqa: S105 (an activity name)
    ACTIVATE_USER = "auth.activate_user"
    REVERT_USER_ACTIVATION = "auth.revert_user_activation"
    DISCARD_PENDING_USER = "auth.discard_pending_user"
    SEND_PASSWORD_RESET_EMAIL = "auth.send_password_reset_email"  # noqa: S105 (an activity name)
    CHECK_PASSWORD_RESET = "auth.check_password_reset"  # noqa: S105 (an activity name)
    EXPIRE_TOKEN = "auth.expire_token"  # noqa: S105 (an activity name)
    VERIFY_MFA_CODE = "auth.verify_mfa_code"
    ENABLE_MFA = "auth.enable_mfa"
    DISCARD_MFA_SECRET = "auth.discard_mfa_secret"  # noqa: S105 (an activity name)
    # For the cross-service workflows (user onboarding, compliance export and erasure).
    CREATE_INVITED_USER = "auth.create_invited_user"
    DELETE_INVITED_USER = "auth.delete_invited_user"  # compensates create_invited_user
    SEND_INVITATION = "auth.send_invitation"
    EXPORT_USER_DATA = "auth.export_user_data"
    ERASE_USER_DATA = "auth.erase_user_data"
    CONSUME_REAUTHENTICATION = "auth.consume_reauthentication"


# Roles and permissions --------------------------------------------------------------------


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class Permission(StrEnum):
    TENANT_READ = "tenant.read"
    TENANT_UPDATE = "tenant.update"
    TENANT_DELETE = "tenant.delete"
    TENANT_BILLING = "tenant.billing"
    MEMBERS_READ = "members.read"
    MEMBERS_INVITE = "members.invite"
    MEMBERS_MANAGE = "members.manage"  # change roles, suspend, remove, deactivate
    FILES_READ = "files.read"
    FILES_WRITE = "files.write"
    FILES_SHARE = "files.share"
    FILES_DELETE = "files.delete"
    WORKFLOWS_READ = "workflows.read"
    WORKFLOWS_MANAGE = "workflows.manage"  # cancel or retry other users' operations


_VIEWER = frozenset(
    {
        Permission.TENANT_READ,
        Permission.MEMBERS_READ,
        Permission.FILES_READ,
        Permission.WORKFLOWS_READ,
    }
)
_MEMBER = _VIEWER | {Permission.FILES_WRITE, Permission.FILES_SHARE}
_ADMIN = _MEMBER | {
    Permission.TENANT_UPDATE,
    Permission.MEMBERS_INVITE,
    Permission.MEMBERS_MANAGE,
    Permission.FILES_DELETE,
    Permission.WORKFLOWS_MANAGE,
}
_OWNER = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _OWNER,
    Role.ADMIN: _ADMIN,
    Role.MEMBER: _MEMBER,
    Role.VIEWER: _VIEWER,
}
_ROLE_NAMES = frozenset(role.value for role in Role)


def permissions_for(roles: Iterable[str]) -> frozenset[Permission]:
    """Every permission the roles give; unknown role names give nothing."""
    granted: set[Permission] = set()
    for role in roles:
        if role in _ROLE_NAMES:
            granted |= ROLE_PERMISSIONS[Role(role)]
    return frozenset(granted)


# Shared records --------------------------------------------------------------------------


class UserStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    # Created by an admin (user onboarding); active once the user chose a password with the
    # invitation link.
    INVITED = "invited"


class GrantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class AuthUser(BaseModel):
    id: str
    email: str
    status: UserStatus
    email_verified_at: datetime | None = None
    mfa_enabled: bool = False


class TenantGrant(BaseModel):
    """The auth service's projection of a membership: what tokens for this tenant carry."""

    user_id: str
    tenant_id: str
    roles: list[str]
    status: GrantStatus


# Activities for other services --------------------------------------------------------------


class ValidateCredentialsInput(BaseModel):
    """Checks the *caller's* credentials (the propagated identity): the account is active and,
    when given, the session is still live and the tenant grant is active.

    Email and password are checked only by the login endpoint, never through Temporal (they
    would be written to workflow history)."""

    session_id: str | None = None
    tenant_id: str | None = None


class CredentialsCheck(BaseModel):
    user_id: str
    email: str
    session_id: str | None = None
    tenant_id: str | None = None
    roles: list[str] = Field(default_factory=list)
    mfa_enabled: bool = False


class CreateSessionInput(BaseModel):
    """A new session for the caller in ``tenant_id`` (e.g. tenant switching). The id is made
    by the workflow (``workflow.uuid4()``), so a retried activity creates it once."""

    session_id: str = Field(min_length=1, max_length=36)
    tenant_id: str = Field(min_length=1, max_length=128)
    user_agent: str | None = Field(default=None, max_length=300)


class CreatedSession(BaseModel):
    """No tokens here (they would land in history): the client trades ``exchange_code``
    (single use, short-lived) for its tokens at ``POST /api/auth/sessions/exchange``."""

    session_id: str
    user_id: str
    tenant_id: str
    roles: list[str]
    expires_at: datetime
    exchange_code: str
    exchange_code_expires_at: datetime


class SessionInput(BaseModel):
    session_id: str = Field(min_length=1, max_length=36)


class SessionChange(BaseModel):
    session_id: str
    # False when there was nothing to do (already in the wanted state): activities are idempotent.
    changed: bool


class CheckPermissionsInput(BaseModel):
    """``user_id`` defaults to the caller and ``tenant_id`` to the caller's tenant. A caller may
    check itself in any tenant; another user only in the caller's own tenant."""

    permissions: list[Permission] = Field(min_length=1, max_length=32)
    user_id: str | None = None
    tenant_id: str | None = None
    # True: a denial fails the activity with a non-retryable AuthorizationError.
    require: bool = False


class PermissionCheck(BaseModel):
    user_id: str
    tenant_id: str
    roles: list[str]
    allowed: bool
    missing: list[Permission] = Field(default_factory=list)


class RevokeUserSessionsInput(BaseModel):
    user_id: str
    reason: str | None = Field(default=None, max_length=200)  # logged (e.g. "deactivated")


class RevokedSessions(BaseModel):
    user_id: str
    count: int


class GrantTenantAccessInput(BaseModel):
    """Idempotent upsert of the grant; ``status=suspended`` suspends it, ``active`` resumes."""

    user_id: str
    tenant_id: str = Field(min_length=1, max_length=128)
    # Role values; kept as strings so a newer role does not break older readers.
    roles: list[str] = Field(min_length=1, max_length=16)
    status: GrantStatus = GrantStatus.ACTIVE


class RevokeTenantAccessInput(BaseModel):
    user_id: str
    tenant_id: str = Field(min_length=1, max_length=128)
    # Also end the user's sessions in that tenant.
    revoke_sessions: bool = True


class TenantAccessRevoked(BaseModel):
    user_id: str
    tenant_id: str
    removed: bool
    sessions_revoked: int = 0


class GetUserInput(BaseModel):
    user_id: str


class SetAccountStatusInput(BaseModel):
    """Deactivates (login refused, sessions revoked) or reactivates an active account; a pending
    account is left to its registration. Allowed for the user itself or a member manager of a
    tenant the user belongs to."""

    user_id: str
    status: UserStatus


class AccountStatusChange(BaseModel):
    user_id: str
    status: UserStatus
    changed: bool
    sessions_revoked: int = 0


# Workflows ------------------------------------------------------------------------------


class UserRegistrationInput(BaseModel):
    """The pending user already exists (the register endpoint wrote it with its password
    hash); only its id travels. With ``tenant_id`` the new user gets access to that tenant
    once verified; only a workflow started in that tenant's context may ask for it."""

    user_id: str
    expires_in_seconds: int = Field(
        default=DEFAULT_REGISTRATION_EXPIRY_SECONDS, ge=1, le=30 * 24 * 3600
    )
    tenant_id: str | None = None
    roles: list[str] = Field(default_factory=lambda: [Role.MEMBER.value], max_length=16)


class RegistrationStatus(StrEnum):
    ACTIVE = "active"


class UserRegistrationResult(BaseModel):
    """On expiry the workflow fails instead (ValidationError "registration expired") after
    deleting the pending user and its tokens."""

    user_id: str
    status: RegistrationStatus = RegistrationStatus.ACTIVE
    tenant_id: str | None = None


class VerifyEmailSignal(BaseModel):
    # The id of the token the verify endpoint found by the link's hash (never the token).
    token_id: str


class PasswordResetInput(BaseModel):
    """``user_id`` is None when no active account has the address asked for: the request is
    answered (and its operation run) all the same, and the workflow ends at once without an
    email (``PasswordResetStatus.NO_ACCOUNT``). The address itself never travels."""

    user_id: str | None = None
    expires_in_seconds: int = Field(
        default=DEFAULT_PASSWORD_RESET_EXPIRY_SECONDS, ge=1, le=7 * 24 * 3600
    )


class ResetPasswordSignal(BaseModel):
    # The confirm endpoint already stored the new password hash and used the token up.
    token_id: str


class PasswordResetStatus(StrEnum):
    RESET = "reset"  # the password was changed and every session ended
    NO_ACCOUNT = "no_account"  # no active account has the address: nothing was sent


class PasswordResetResult(BaseModel):
    # Results written before NO_ACCOUNT existed have no status: they are resets.
    user_id: str | None
    sessions_revoked: int
    status: PasswordResetStatus = PasswordResetStatus.RESET


class MfaSetupInput(BaseModel):
    """The TOTP secret stays in the auth store (encrypted); the workflow knows its id only."""

    user_id: str
    secret_id: str
    expires_in_seconds: int = Field(default=DEFAULT_MFA_SETUP_EXPIRY_SECONDS, ge=1, le=24 * 3600)
    max_attempts: int = Field(default=DEFAULT_MFA_MAX_ATTEMPTS, ge=1, le=20)


class ConfirmMfaSignal(BaseModel):
    attempt_id: str
    code: str = Field(pattern=r"^[0-9]{6}$")
    # SHA-256 of the recovery codes the confirm endpoint shows once (plaintext never travels).
    recovery_code_hashes: list[str] = Field(
        min_length=RECOVERY_CODE_COUNT, max_length=RECOVERY_CODE_COUNT
    )


class MfaAttemptStatus(StrEnum):
    PENDING = "pending"  # not processed yet (or unknown attempt id)
    ACCEPTED = "accepted"  # valid code: MFA is enabled
    REJECTED = "rejected"


class MfaAttemptRequest(BaseModel):
    attempt_id: str


class MfaAttempt(BaseModel):
    attempt_id: str
    status: MfaAttemptStatus
    attempts_left: int


class MfaSetupResult(BaseModel):
    user_id: str
    mfa_enabled: bool
    recovery_codes: int


# Steps of the auth workflows ---------------------------------------------------------------


class SendTokenEmailInput(BaseModel):
    """Sends a verification or reset link; the token id is derived from ``workflow_id``, so a
    retry neither creates a second token nor sends a second email."""

    user_id: str
    workflow_id: str
    expires_at: datetime


class TokenIssued(BaseModel):
    token_id: str
    expires_at: datetime
    email_sent: bool


class VerifyTokenInput(BaseModel):
    user_id: str
    token_id: str


class UserInput(BaseModel):
    user_id: str


class UserChange(BaseModel):
    user_id: str
    changed: bool


class TokenInput(BaseModel):
    token_id: str


class TokenState(BaseModel):
    token_id: str
    used: bool


class VerifyMfaCodeInput(BaseModel):
    user_id: str
    secret_id: str
    code: str


class MfaCodeCheck(BaseModel):
    valid: bool


class EnableMfaInput(BaseModel):
    user_id: str
    secret_id: str
    recovery_code_hashes: list[str] = Field(
        min_length=RECOVERY_CODE_COUNT, max_length=RECOVERY_CODE_COUNT
    )


class MfaSecretInput(BaseModel):
    user_id: str
    secret_id: str


# Cross-service workflows (user onboarding, compliance) ---------------------------------------


class CreateInvitedUserInput(BaseModel):
    """An invited account for ``email`` (no password: the invitation link sets it). Its id
    derives from ``operation_id``, so a retry finds it instead of creating a second one."""

    email: str = Field(max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
    operation_id: str = Field(min_length=1, max_length=255)


class InvitedUser(BaseModel):
    user_id: str
    email: str
    status: UserStatus
    # True: this operation created the account (its compensation may delete it); False: an
    # invitation of another operation was still open and is reused.
    created: bool


class DeleteInvitedUserInput(BaseModel):
    """Deletes the account only if ``operation_id`` created it and it is still invited."""

    user_id: str
    operation_id: str = Field(min_length=1, max_length=255)


class SendInvitationInput(BaseModel):
    """One single-use set-password token and one email per operation (no secret in history)."""

    user_id: str
    operation_id: str = Field(min_length=1, max_length=255)
    tenant_name: str = Field(min_length=1, max_length=200)
    display_name: str = Field(min_length=1, max_length=100)
    expires_at: datetime


class InvitationSent(BaseModel):
    token_id: str
    expires_at: datetime
    email_sent: bool


class ConsumeReauthenticationInput(BaseModel):
    """The single-use proof from ``POST /api/auth/reauthenticate`` (the caller's own)."""

    reauthentication: str = Field(min_length=1, max_length=200)


class Reauthentication(BaseModel):
    user_id: str


class AuthActivities:
    """Typed references to the auth service's activities (name, task queue, input, result):
    workflows call them through the step kernel, services.common.steps."""

    ACTIVATE_USER = ActivityRef(AuthActivity.ACTIVATE_USER, TaskQueue.AUTH, UserInput, UserChange)
    CHECK_PASSWORD_RESET = ActivityRef(
        AuthActivity.CHECK_PASSWORD_RESET, TaskQueue.AUTH, VerifyTokenInput, TokenState
    )
    CHECK_PERMISSIONS = ActivityRef(
        AuthActivity.CHECK_PERMISSIONS, TaskQueue.AUTH, CheckPermissionsInput, PermissionCheck
    )
    CREATE_INVITED_USER = ActivityRef(
        AuthActivity.CREATE_INVITED_USER, TaskQueue.AUTH, CreateInvitedUserInput, InvitedUser
    )
    CREATE_SESSION = ActivityRef(
        AuthActivity.CREATE_SESSION, TaskQueue.AUTH, CreateSessionInput, CreatedSession
    )
    DELETE_INVITED_USER = ActivityRef(
        AuthActivity.DELETE_INVITED_USER, TaskQueue.AUTH, DeleteInvitedUserInput, UserChange
    )
    DISCARD_MFA_SECRET = ActivityRef(
        AuthActivity.DISCARD_MFA_SECRET, TaskQueue.AUTH, MfaSecretInput, UserChange
    )
    DISCARD_PENDING_USER = ActivityRef(
        AuthActivity.DISCARD_PENDING_USER, TaskQueue.AUTH, UserInput, UserChange
    )
    ENABLE_MFA = ActivityRef(
        AuthActivity.ENABLE_MFA, TaskQueue.AUTH, EnableMfaInput, MfaSetupResult
    )
    ERASE_USER_DATA = ActivityRef(
        AuthActivity.ERASE_USER_DATA, TaskQueue.AUTH, UserDataRequest, UserDataErased
    )
    EXPIRE_TOKEN = ActivityRef(AuthActivity.EXPIRE_TOKEN, TaskQueue.AUTH, TokenInput, TokenState)
    EXPORT_USER_DATA = ActivityRef(
        AuthActivity.EXPORT_USER_DATA, TaskQueue.AUTH, UserDataRequest, UserDataExport
    )
    CONSUME_REAUTHENTICATION = ActivityRef(
        AuthActivity.CONSUME_REAUTHENTICATION,
        TaskQueue.AUTH,
        ConsumeReauthenticationInput,
        Reauthentication,
    )
    GET_USER = ActivityRef(AuthActivity.GET_USER, TaskQueue.AUTH, GetUserInput, AuthUser)
    GRANT_TENANT_ACCESS = ActivityRef(
        AuthActivity.GRANT_TENANT_ACCESS, TaskQueue.AUTH, GrantTenantAccessInput, TenantGrant
    )
    INVALIDATE_SESSION = ActivityRef(
        AuthActivity.INVALIDATE_SESSION, TaskQueue.AUTH, SessionInput, SessionChange
    )
    RESTORE_PREVIOUS_SESSION = ActivityRef(
        AuthActivity.RESTORE_PREVIOUS_SESSION, TaskQueue.AUTH, SessionInput, SessionChange
    )
    REVERT_USER_ACTIVATION = ActivityRef(
        AuthActivity.REVERT_USER_ACTIVATION, TaskQueue.AUTH, UserInput, UserChange
    )
    REVOKE_TENANT_ACCESS = ActivityRef(
        AuthActivity.REVOKE_TENANT_ACCESS,
        TaskQueue.AUTH,
        RevokeTenantAccessInput,
        TenantAccessRevoked,
    )
    REVOKE_USER_SESSIONS = ActivityRef(
        AuthActivity.REVOKE_USER_SESSIONS, TaskQueue.AUTH, RevokeUserSessionsInput, RevokedSessions
    )
    ROLLBACK_SESSION_CREATION = ActivityRef(
        AuthActivity.ROLLBACK_SESSION_CREATION, TaskQueue.AUTH, SessionInput, SessionChange
    )
    SEND_INVITATION = ActivityRef(
        AuthActivity.SEND_INVITATION, TaskQueue.AUTH, SendInvitationInput, InvitationSent
    )
    SEND_PASSWORD_RESET_EMAIL = ActivityRef(
        AuthActivity.SEND_PASSWORD_RESET_EMAIL, TaskQueue.AUTH, SendTokenEmailInput, TokenIssued
    )
    SEND_VERIFICATION_EMAIL = ActivityRef(
        AuthActivity.SEND_VERIFICATION_EMAIL, TaskQueue.AUTH, SendTokenEmailInput, TokenIssued
    )
    SET_ACCOUNT_STATUS = ActivityRef(
        AuthActivity.SET_ACCOUNT_STATUS, TaskQueue.AUTH, SetAccountStatusInput, AccountStatusChange
    )
    VALIDATE_CREDENTIALS = ActivityRef(
        AuthActivity.VALIDATE_CREDENTIALS,
        TaskQueue.AUTH,
        ValidateCredentialsInput,
        CredentialsCheck,
    )
    VERIFY_EMAIL_TOKEN = ActivityRef(
        AuthActivity.VERIFY_EMAIL_TOKEN, TaskQueue.AUTH, VerifyTokenInput, TokenState
    )
    VERIFY_MFA_CODE = ActivityRef(
        AuthActivity.VERIFY_MFA_CODE, TaskQueue.AUTH, VerifyMfaCodeInput, MfaCodeCheck
    )
