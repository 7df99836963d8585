"""The auth service's activities: the ones other services' workflows call by name (sessions,
credentials, permissions, tenant access grants) and the steps of its own workflows.

Every activity is idempotent: ids come from the workflow, writes are insert-if-absent or
conditional, and an email is queued once per key. Activities touching another user's or
another tenant's data check the propagated caller identity first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
import redis.asyncio as aioredis

from adx.identity import SigningKeys
from adx.settings import Settings
from contracts.auth import (
    AccountStatusChange,
    AuthActivity,
    AuthUser,
    CheckPermissionsInput,
    ConsumeReauthenticationInput,
    CreatedSession,
    CreateInvitedUserInput,
    CreateSessionInput,
    CredentialsCheck,
    DeleteInvitedUserInput,
    EnableMfaInput,
    GetUserInput,
    GrantStatus,
    GrantTenantAccessInput,
    InvitationSent,
    InvitedUser,
    MfaCodeCheck,
    MfaSecretInput,
    MfaSetupResult,
    Permission,
    PermissionCheck,
    Reauthentication,
    RevokedSessions,
    RevokeTenantAccessInput,
    RevokeUserSessionsInput,
    SendInvitationInput,
    SendTokenEmailInput,
    SessionChange,
    SessionInput,
    SetAccountStatusInput,
    TenantAccessRevoked,
    TenantGrant,
    TokenInput,
    TokenIssued,
    TokenState,
    UserChange,
    UserInput,
    UserStatus,
    ValidateCredentialsInput,
    VerifyMfaCodeInput,
    VerifyTokenInput,
    permissions_for,
)
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.workflow import UserDataErased, UserDataExport, UserDataRequest
from services.auth.models import MfaSecretStatus, SessionRecord, TokenPurpose, TokenRow, UserRow
from services.auth.security import SecretBox, new_token, token_hash, totp_step
from services.auth.store import AuthStore, SessionStore, open_session_store
from services.common.activity import service_activity
from services.common.before import current_operation
from services.common.email import EmailOutbox, OutboxEntry, OutgoingEmail
from services.common.errors import (
    ServiceError,
    data_subject_here,
    ensure_tenant,
    require_context,
    security_log,
)
from services.common.service import ServiceRuntime
from workflow_client.codec import KeyRing

# Ids of rows made on behalf of a workflow derive from its id (stable across retries).
_IDS = uuid.UUID("3c7d1f52-6a0e-4b8e-9f41-2d5c8e7a9b16")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_IDS, "|".join(parts)))


def _literal(text: str) -> str:
    """Text placed into a ``str.format`` template as it is."""
    return text.replace("{", "{{").replace("}", "}}")


def invited_user_id(operation_id: str) -> str:
    """The id of the account an onboarding operation invites (stable across retries)."""
    return derived_id(operation_id, "invited_user")


def invitation_key(operation_id: str) -> str:
    return f"auth:invitation:{operation_id}"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuthComponents:
    """What both modes of the auth service work with (one set per process)."""

    settings: Settings
    store: AuthStore
    sessions: SessionStore
    outbox: EmailOutbox
    box: SecretBox
    keys: SigningKeys
    redis: aioredis.Redis | None = None

    @classmethod
    def create(cls, runtime: ServiceRuntime) -> AuthComponents:
        settings = runtime.settings
        store = AuthStore(runtime.db)
        sessions, client = open_session_store(settings, runtime.db)
        return cls(
            settings=settings,
            store=store,
            sessions=sessions,
            outbox=EmailOutbox(runtime.db, store.outbox_table, settings),
            box=SecretBox(KeyRing.from_settings(settings)),
            keys=SigningKeys.from_settings(settings),
            redis=client,
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def components(runtime: ServiceRuntime) -> AuthComponents:
    found = runtime.components.find(AuthComponents)
    if found is None:
        found = AuthComponents.create(runtime)
        runtime.components.provide(found)
    return found


def link_base(settings: Settings) -> str:
    return (settings.public_url or settings.url("gateway")).rstrip("/")


def _not_found(what: str, context: RequestContext | None, **details: Any) -> ServiceError:
    """Someone else's session or account: logged as a security event, shown as 'not found'."""
    security_log.warning(
        "security.cross_account_access",
        resource=what,
        caller_user_id=context.user_id if context else None,
        caller_tenant_id=context.tenant_id if context else None,
        **details,
    )
    return ServiceError(ErrorKind.TENANT_ISOLATION, f"{what} not found")


class AuthActivities:
    def __init__(self, parts: AuthComponents, *, exchange_code_seconds: int = 300) -> None:
        self.parts = parts
        self.store = parts.store
        self.sessions = parts.sessions
        self.settings = parts.settings
        self._exchange_ttl = timedelta(seconds=exchange_code_seconds)

    def all(self) -> list[Any]:
        return [
            self.validate_credentials,
            self.create_session,
            self.invalidate_session,
            self.check_permissions,
            self.rollback_session_creation,
            self.restore_previous_session,
            self.revoke_user_sessions,
            self.grant_tenant_access,
            self.revoke_tenant_access,
            self.get_user,
            self.set_account_status,
            self.send_verification_email,
            self.verify_email_token,
            self.activate_user,
            self.revert_user_activation,
            self.discard_pending_user,
            self.send_password_reset_email,
            self.check_password_reset,
            self.expire_token,
            self.verify_mfa_code,
            self.enable_mfa,
            self.discard_mfa_secret,
            self.create_invited_user,
            self.delete_invited_user,
            self.send_invitation,
            self.export_user_data,
            self.erase_user_data,
            self.consume_reauthentication,
        ]

    # Helpers ---------------------------------------------------------------------------

    async def _active_user(self, user_id: str) -> UserRow:
        user = await self.store.get_user(user_id)
        if user is None or user.status is not UserStatus.ACTIVE:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is not active")
        return user

    async def _own_session(self, session_id: str) -> tuple[RequestContext, SessionRecord | None]:
        """The caller's session, None if it no longer exists; someone else's is 'not found'."""
        context = require_context()
        record = await self.sessions.get(session_id)
        if record is not None and record.user_id != context.user_id:
            raise _not_found("session", context, session_id=session_id)
        return context, record

    async def _may_manage(self, context: RequestContext, user_id: str) -> None:
        """The caller is the user, or manages members of a tenant the user belongs to."""
        if user_id == context.user_id:
            return
        target = await self.store.get_grant(user_id, context.tenant_id)
        if target is None:
            raise _not_found("user", context, user_id=user_id)
        caller = await self.store.active_grant(context.user_id, context.tenant_id)
        if caller is None or Permission.MEMBERS_MANAGE not in permissions_for(caller.roles):
            raise ServiceError(ErrorKind.AUTHORIZATION, "not allowed to manage this user")

    # For other services -------------------------------------------------------------------

    @service_activity(AuthActivity.VALIDATE_CREDENTIALS)
    async def validate_credentials(self, input: ValidateCredentialsInput) -> CredentialsCheck:
        context = require_context()
        user = await self._active_user(context.user_id)
        if input.session_id is not None:
            record = await self.sessions.get(input.session_id)
            if record is not None and record.user_id != user.id:
                raise _not_found("session", context, session_id=input.session_id)
            if record is None or not record.active(now_utc()):
                raise ServiceError(ErrorKind.AUTHENTICATION, "the session has ended")
        roles: list[str] = []
        if input.tenant_id is not None:
            grant = await self.store.active_grant(user.id, input.tenant_id)
            if grant is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "tenant not found")
            roles = grant.roles
        return CredentialsCheck(
            user_id=user.id,
            email=user.email,
            session_id=input.session_id,
            tenant_id=input.tenant_id,
            roles=roles,
            mfa_enabled=user.mfa_enabled,
        )

    @service_activity(AuthActivity.CREATE_SESSION)
    async def create_session(self, input: CreateSessionInput) -> CreatedSession:
        context = require_context()
        user = await self._active_user(context.user_id)
        grant = await self.store.active_grant(user.id, input.tenant_id)
        if grant is None:
            raise ServiceError(ErrorKind.NOT_FOUND, "tenant not found")
        now = now_utc()
        existing = await self.sessions.get(input.session_id)
        if existing is not None and existing.user_id != user.id:
            raise _not_found("session", context, session_id=input.session_id)
        record = await self.sessions.create(
            SessionRecord(
                id=input.session_id,
                user_id=user.id,
                tenant_id=input.tenant_id,
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
                user_agent=input.user_agent,
            )
        )
        # The code the client trades for tokens; a retry replaces it (the plaintext of the
        # first attempt is gone with it), never adds a second one.
        code = new_token()
        issued = await self.store.issue_token(
            TokenRow(
                id=derived_id(record.id, TokenPurpose.SESSION_EXCHANGE.value),
                user_id=user.id,
                purpose=TokenPurpose.SESSION_EXCHANGE,
                token_hash=token_hash(code),
                workflow_id=None,
                subject_id=record.id,
                created_at=now,
                expires_at=now + self._exchange_ttl,
                used_at=None,
            )
        )
        if issued.token_hash != token_hash(code) and not await self.store.replace_token_hash(
            issued.id, token_hash(code)
        ):
            raise ServiceError(ErrorKind.CONFLICT, "the session was already handed out")
        return CreatedSession(
            session_id=record.id,
            user_id=user.id,
            tenant_id=record.tenant_id,
            roles=grant.roles,
            expires_at=record.expires_at,
            exchange_code=code,
            exchange_code_expires_at=issued.expires_at,
        )

    @service_activity(AuthActivity.INVALIDATE_SESSION)
    async def invalidate_session(self, input: SessionInput) -> SessionChange:
        _, record = await self._own_session(input.session_id)
        changed = record is not None and await self.sessions.revoke(record.id, now_utc())
        return SessionChange(session_id=input.session_id, changed=changed)

    @service_activity(AuthActivity.ROLLBACK_SESSION_CREATION)
    async def rollback_session_creation(self, input: SessionInput) -> SessionChange:
        _, record = await self._own_session(input.session_id)
        changed = record is not None and await self.sessions.delete(record.id)
        await self.store.delete_tokens_for_subject(input.session_id)
        return SessionChange(session_id=input.session_id, changed=changed)

    @service_activity(AuthActivity.RESTORE_PREVIOUS_SESSION)
    async def restore_previous_session(self, input: SessionInput) -> SessionChange:
        _, record = await self._own_session(input.session_id)
        changed = record is not None and await self.sessions.restore(record.id)
        return SessionChange(session_id=input.session_id, changed=changed)

    @service_activity(AuthActivity.CHECK_PERMISSIONS)
    async def check_permissions(self, input: CheckPermissionsInput) -> PermissionCheck:
        context = require_context()
        user_id = input.user_id or context.user_id
        tenant_id = input.tenant_id or context.tenant_id
        if user_id != context.user_id:
            # Another user's permissions only within the caller's own tenant.
            ensure_tenant(tenant_id, "tenant")
        roles: list[str] = []
        user = await self.store.get_user(user_id)
        grant = await self.store.active_grant(user_id, tenant_id)
        if user is not None and user.status is UserStatus.ACTIVE and grant is not None:
            roles = grant.roles
        granted = permissions_for(roles)
        missing = [permission for permission in input.permissions if permission not in granted]
        if missing and input.require:
            raise ServiceError(ErrorKind.AUTHORIZATION, "permission denied")
        return PermissionCheck(
            user_id=user_id, tenant_id=tenant_id, roles=roles, allowed=not missing, missing=missing
        )

    @service_activity(AuthActivity.REVOKE_USER_SESSIONS)
    async def revoke_user_sessions(self, input: RevokeUserSessionsInput) -> RevokedSessions:
        context = require_context()
        await self._may_manage(context, input.user_id)
        count = await revoke_all_sessions(self.sessions, input.user_id)
        security_log.info(
            "security.sessions_revoked",
            user_id=input.user_id,
            count=count,
            reason=input.reason,
            caller_user_id=context.user_id,
        )
        return RevokedSessions(user_id=input.user_id, count=count)

    @service_activity(AuthActivity.SET_ACCOUNT_STATUS)
    async def set_account_status(self, input: SetAccountStatusInput) -> AccountStatusChange:
        context = require_context()
        await self._may_manage(context, input.user_id)
        changed = await self.store.set_account_status(input.user_id, input.status, now_utc())
        revoked = 0
        if input.status is UserStatus.DEACTIVATED:
            # Also on a retry: a session opened in between must not survive.
            revoked = await revoke_all_sessions(self.sessions, input.user_id)
        return AccountStatusChange(
            user_id=input.user_id, status=input.status, changed=changed, sessions_revoked=revoked
        )

    @service_activity(AuthActivity.GRANT_TENANT_ACCESS)
    async def grant_tenant_access(self, input: GrantTenantAccessInput) -> TenantGrant:
        """Grants (or changes in place: a grant keeps its age, which orders the default
        tenant) a user's access; a suspended grant ends the user's sessions in the tenant."""
        ensure_tenant(input.tenant_id, "tenant")
        grant = await self.store.upsert_grant(
            input.user_id, input.tenant_id, input.roles, input.status, now_utc()
        )
        if input.status is GrantStatus.SUSPENDED:
            await revoke_all_sessions(self.sessions, input.user_id, tenant_id=input.tenant_id)
        return grant.public()

    @service_activity(AuthActivity.REVOKE_TENANT_ACCESS)
    async def revoke_tenant_access(self, input: RevokeTenantAccessInput) -> TenantAccessRevoked:
        ensure_tenant(input.tenant_id, "tenant")
        removed = await self.store.delete_grant(input.user_id, input.tenant_id)
        revoked = 0
        if input.revoke_sessions:
            revoked = await revoke_all_sessions(
                self.sessions, input.user_id, tenant_id=input.tenant_id
            )
        return TenantAccessRevoked(
            user_id=input.user_id,
            tenant_id=input.tenant_id,
            removed=removed,
            sessions_revoked=revoked,
        )

    @service_activity(AuthActivity.GET_USER)
    async def get_user(self, input: GetUserInput) -> AuthUser:
        context = require_context()
        if (
            input.user_id != context.user_id
            and await self.store.get_grant(input.user_id, context.tenant_id) is None
        ):
            raise _not_found("user", context, user_id=input.user_id)
        user = await self.store.get_user(input.user_id)
        if user is None:
            raise ServiceError(ErrorKind.NOT_FOUND, "user not found")
        return user.public()

    # user_registration ----------------------------------------------------------------------

    @service_activity(AuthActivity.SEND_VERIFICATION_EMAIL)
    async def send_verification_email(self, input: SendTokenEmailInput) -> TokenIssued:
        user = await self.store.get_user(input.user_id)
        if user is None or user.status is not UserStatus.PENDING:
            raise ServiceError(ErrorKind.VALIDATION, "the registration is no longer pending")
        return await self._send_link(
            user,
            input,
            TokenPurpose.VERIFY_EMAIL,
            subject="Verify your email address",
            body=(
                "Welcome to ADX Core.\n\n"
                "Confirm your email address to activate your account:\n"
                "{base}/api/auth/verify?token={token}\n\n"
                "The link expires at {expires} (UTC). If you did not register, ignore this email."
            ),
        )

    @service_activity(AuthActivity.VERIFY_EMAIL_TOKEN)
    async def verify_email_token(self, input: VerifyTokenInput) -> TokenState:
        now = now_utc()
        if await self.store.consume_token(
            input.token_id, input.user_id, TokenPurpose.VERIFY_EMAIL, now
        ):
            return TokenState(token_id=input.token_id, used=True)
        token = await self.store.get_token(input.token_id)
        # Already used for this user: a retry of this activity after it succeeded.
        if token is not None and token.user_id == input.user_id and token.used_at is not None:
            return TokenState(token_id=input.token_id, used=True)
        raise ServiceError(ErrorKind.VALIDATION, "the verification link is invalid or has expired")

    @service_activity(AuthActivity.ACTIVATE_USER)
    async def activate_user(self, input: UserInput) -> UserChange:
        changed = await self.store.activate_user(input.user_id, now_utc())
        return UserChange(user_id=input.user_id, changed=changed)

    @service_activity(AuthActivity.REVERT_USER_ACTIVATION)
    async def revert_user_activation(self, input: UserInput) -> UserChange:
        changed = await self.store.revert_activation(input.user_id, now_utc())
        return UserChange(user_id=input.user_id, changed=changed)

    @service_activity(AuthActivity.DISCARD_PENDING_USER)
    async def discard_pending_user(self, input: UserInput) -> UserChange:
        changed = await self.store.delete_pending_user(input.user_id)
        return UserChange(user_id=input.user_id, changed=changed)

    # password_reset -----------------------------------------------------------------------

    @service_activity(AuthActivity.SEND_PASSWORD_RESET_EMAIL)
    async def send_password_reset_email(self, input: SendTokenEmailInput) -> TokenIssued:
        user = await self.store.get_user(input.user_id)
        if user is None or user.status is not UserStatus.ACTIVE:
            raise ServiceError(ErrorKind.VALIDATION, "the account is not active")
        return await self._send_link(
            user,
            input,
            TokenPurpose.PASSWORD_RESET,
            subject="Reset your password",
            body=(
                "Someone asked to reset the password of your ADX Core account.\n\n"
                "Choose a new password here:\n"
                "{base}/reset-password?token={token}\n\n"
                "The link works once and expires at {expires} (UTC). Every session of the "
                "account is signed out after the reset. If it was not you, ignore this email."
            ),
        )

    @service_activity(AuthActivity.CHECK_PASSWORD_RESET)
    async def check_password_reset(self, input: VerifyTokenInput) -> TokenState:
        """The confirm endpoint used the token up (and stored the new password)."""
        token = await self.store.get_token(input.token_id)
        if (
            token is None
            or token.user_id != input.user_id
            or token.purpose is not TokenPurpose.PASSWORD_RESET
            or token.used_at is None
        ):
            raise ServiceError(ErrorKind.VALIDATION, "the reset link has not been used")
        return TokenState(token_id=token.id, used=True)

    @service_activity(AuthActivity.EXPIRE_TOKEN)
    async def expire_token(self, input: TokenInput) -> TokenState:
        token = await self.store.expire_token(input.token_id, now_utc())
        return TokenState(
            token_id=input.token_id, used=token is not None and token.used_at is not None
        )

    # mfa_setup ----------------------------------------------------------------------------

    def _own_user(self, user_id: str) -> None:
        context = require_context()
        if context.user_id != user_id:
            raise _not_found("user", context, user_id=user_id)

    @service_activity(AuthActivity.VERIFY_MFA_CODE)
    async def verify_mfa_code(self, input: VerifyMfaCodeInput) -> MfaCodeCheck:
        """Side-effect free: a retry answers the same."""
        self._own_user(input.user_id)
        secret = await self.store.get_mfa_secret(input.secret_id)
        if (
            secret is None
            or secret.user_id != input.user_id
            or secret.status is not MfaSecretStatus.PENDING
        ):
            raise ServiceError(ErrorKind.VALIDATION, "the MFA setup has expired")
        plain = self.parts.box.decrypt(secret.secret_ciphertext, secret.id)
        return MfaCodeCheck(valid=totp_step(plain, input.code) is not None)

    @service_activity(AuthActivity.ENABLE_MFA)
    async def enable_mfa(self, input: EnableMfaInput) -> MfaSetupResult:
        self._own_user(input.user_id)
        await self.store.enable_mfa(
            input.user_id, input.secret_id, input.recovery_code_hashes, now_utc()
        )
        return MfaSetupResult(
            user_id=input.user_id,
            mfa_enabled=True,
            recovery_codes=len(input.recovery_code_hashes),
        )

    @service_activity(AuthActivity.DISCARD_MFA_SECRET)
    async def discard_mfa_secret(self, input: MfaSecretInput) -> UserChange:
        self._own_user(input.user_id)
        changed = await self.store.discard_mfa_secret(input.secret_id)
        return UserChange(user_id=input.user_id, changed=changed)

    # Cross-service workflows: onboarding and data-subject requests ---------------------

    def _tenant_admin(self) -> RequestContext:
        context = require_context()
        if Permission.MEMBERS_INVITE not in permissions_for(context.roles):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can invite users")
        return context

    @service_activity(AuthActivity.CREATE_INVITED_USER)
    async def create_invited_user(self, input: CreateInvitedUserInput) -> InvitedUser:
        """Idempotent by email: a retry (or the same operation again) finds the account it
        made; another operation's open invitation is reused; an account in use conflicts."""
        self._tenant_admin()
        user_id = invited_user_id(input.operation_id)
        user, _inserted = await self.store.create_invited_user(user_id, input.email, now_utc())
        if user.id != user_id and user.status is not UserStatus.INVITED:
            raise ServiceError(
                ErrorKind.CONFLICT, "an account with this email address already exists"
            )
        return InvitedUser(
            user_id=user.id, email=user.email, status=user.status, created=user.id == user_id
        )

    @service_activity(AuthActivity.DELETE_INVITED_USER)
    async def delete_invited_user(self, input: DeleteInvitedUserInput) -> UserChange:
        """Compensation of create_invited_user: only the account this operation created."""
        require_context()
        if input.user_id != invited_user_id(input.operation_id):
            return UserChange(user_id=input.user_id, changed=False)
        changed = await self.store.delete_invited_user(
            input.user_id, outbox_key=invitation_key(input.operation_id)
        )
        return UserChange(user_id=input.user_id, changed=changed)

    @service_activity(AuthActivity.SEND_INVITATION)
    async def send_invitation(self, input: SendInvitationInput) -> InvitationSent:
        """The welcome email with a single-use set-password link (a password-reset token of
        the invited account: the reset confirm endpoint sets the password and activates it)."""
        context = self._tenant_admin()
        user = await self.store.get_user(input.user_id)
        if user is None or user.status is not UserStatus.INVITED:
            raise ServiceError(ErrorKind.VALIDATION, "the invitation is no longer open")
        if await self.store.get_grant(user.id, context.tenant_id) is None:
            raise _not_found("user", context, user_id=input.user_id)
        issued = await self._send_link(
            user,
            SendTokenEmailInput(
                user_id=user.id, workflow_id=input.operation_id, expires_at=input.expires_at
            ),
            TokenPurpose.PASSWORD_RESET,
            subject=f"You are invited to {input.tenant_name} on ADX Core",
            body=(
                f"Hello {_literal(input.display_name)},\n\n"
                f"You have been invited to {_literal(input.tenant_name)} on ADX Core.\n"
                "Choose your password to activate your account:\n"
                "{base}/reset-password?token={token}\n\n"
                "The link works once and expires at {expires} (UTC)."
            ),
            key=invitation_key(input.operation_id),
        )
        return InvitationSent(
            token_id=issued.token_id, expires_at=issued.expires_at, email_sent=issued.email_sent
        )

    async def _data_subject(self, user_id: str, *, erasing: bool = False) -> str | None:
        async def outside_tenant() -> bool:
            tenant_id = require_context().tenant_id
            return (
                await self.store.get_grant(user_id, tenant_id) is None
                and await self.store.get_user(user_id) is not None
            )

        return await data_subject_here(user_id, erasing=erasing, outside_tenant=outside_tenant)

    @service_activity(AuthActivity.EXPORT_USER_DATA)
    async def export_user_data(self, input: UserDataRequest) -> UserDataExport:
        """Every row about the user (a tenant admin's request: the account and what it has
        in that tenant), no secrets (hashes, TOTP secrets, token values)."""
        scope = await self._data_subject(input.user_id)
        records: dict[str, Any] = await self.store.export_user_data(input.user_id, scope)
        if records:
            records["auth_sessions"] = [
                record.model_dump(mode="json", exclude={"refresh_token_hash"})
                for record in await self.sessions.for_user(input.user_id)
                if scope in (None, record.tenant_id)
            ]
        return UserDataExport(service="auth", user_id=input.user_id, records=records)

    @service_activity(AuthActivity.ERASE_USER_DATA)
    async def erase_user_data(self, input: UserDataRequest) -> UserDataErased:
        """Deletes the account and everything about it (a tenant admin's request: the
        user's access to that tenant and its sessions there; the account stays for the
        user's other tenants); a repeat deletes nothing more."""
        scope = await self._data_subject(input.user_id, erasing=True)
        ended = 0
        for record in await self.sessions.for_user(input.user_id):
            if scope in (None, record.tenant_id) and await self.sessions.delete(record.id):
                ended += 1
        rows = await self.store.erase_user_data(input.user_id, scope)
        if self.parts.redis is not None:
            rows["sessions (redis)"] = ended
        security_log.info("security.user_data_erased", request_id=input.request_id, rows=rows)
        return UserDataErased(service="auth", user_id=input.user_id, rows=rows)

    @service_activity(AuthActivity.CONSUME_REAUTHENTICATION)
    async def consume_reauthentication(
        self, input: ConsumeReauthenticationInput
    ) -> Reauthentication:
        """The caller's own fresh proof of their password, used up by this operation (its
        retries included); anything else is an authentication failure, not retried."""
        context = require_context()
        if not await self.store.consume_reauthentication(
            token_hash(input.reauthentication),
            context.user_id,
            current_operation() or "",
            now_utc(),
        ):
            security_log.warning("security.reauthentication_refused", user_id=context.user_id)
            raise ServiceError(
                ErrorKind.AUTHENTICATION,
                "re-authenticate first: POST /api/auth/reauthenticate with your password",
            )
        return Reauthentication(user_id=context.user_id)

    # Email links --------------------------------------------------------------------------

    async def _send_link(
        self,
        user: UserRow,
        input: SendTokenEmailInput,
        purpose: TokenPurpose,
        *,
        subject: str,
        body: str,
        key: str | None = None,
    ) -> TokenIssued:
        """One token and one email per workflow: stored together, sent at least once."""
        token = new_token()
        key = key or f"auth:{purpose.value}:{input.workflow_id}"
        message = OutgoingEmail(
            idempotency_key=key,
            to=user.email,
            subject=subject,
            body=body.format(
                base=link_base(self.settings),
                token=token,
                expires=input.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            ),
        )
        issued = await self.store.issue_token(
            TokenRow(
                id=derived_id(input.workflow_id, purpose.value),
                user_id=user.id,
                purpose=purpose,
                token_hash=token_hash(token),
                workflow_id=input.workflow_id,
                subject_id=None,
                created_at=now_utc(),
                expires_at=input.expires_at,
                used_at=None,
            ),
            message,
        )
        # On a retry the first attempt's row and email stand; this attempt's token is unused.
        entry = await self._deliver(message)
        if entry.sent_at is not None:
            await self.store.redact_sent_email(key)
        return TokenIssued(
            token_id=issued.id, expires_at=issued.expires_at, email_sent=entry.sent_at is not None
        )

    async def _deliver(self, message: OutgoingEmail) -> OutboxEntry:
        try:
            return await self.parts.outbox.deliver(message)
        except (aiosmtplib.SMTPException, OSError) as error:
            raise ServiceError(ErrorKind.EXTERNAL_SERVICE, "the email could not be sent") from error


REAUTHENTICATION_SECONDS = 300


async def issue_reauthentication(store: AuthStore, user_id: str) -> tuple[str, datetime]:
    """A single-use proof that ``user_id`` just gave their password (and second factor), and
    until when it holds."""
    proof, now = new_token(), now_utc()
    issued = await store.issue_token(
        TokenRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            purpose=TokenPurpose.REAUTHENTICATION,
            token_hash=token_hash(proof),
            workflow_id=None,
            subject_id=None,
            created_at=now,
            expires_at=now + timedelta(seconds=REAUTHENTICATION_SECONDS),
            used_at=None,
        )
    )
    return proof, issued.expires_at


async def revoke_all_sessions(
    sessions: SessionStore, user_id: str, *, tenant_id: str | None = None
) -> int:
    """Revokes the user's live sessions (in one tenant, or all); how many this call revoked."""
    count = 0
    now = now_utc()
    for record in await sessions.for_user(user_id):
        if tenant_id is not None and record.tenant_id != tenant_id:
            continue
        if record.revoked_at is None and await sessions.revoke(record.id, now):
            count += 1
    return count
