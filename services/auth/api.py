"""The auth service's HTTP API (server mode), under ``/api/auth/``.

Login, refresh, logout and session management are direct endpoints; registration, password
reset and MFA setup start (or signal) their workflows. Every authenticated endpoint checks that
the token's session is still live, so logout and revocation take effect at once here (other
services see it when the short-lived access token expires, or through
``auth.validate_credentials``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from adx.identity import InvalidToken, TokenClaims, TokenType, bearer_token
from adx.settings import Environment
from contracts.auth import (
    ANONYMOUS_TENANT,
    ANONYMOUS_USER,
    NO_TENANT,
    ConfirmMfaSignal,
    GrantStatus,
    MfaAttempt,
    MfaAttemptRequest,
    MfaAttemptStatus,
    MfaSetupInput,
    PasswordResetInput,
    PasswordResetResult,
    ResetPasswordSignal,
    UserRegistrationInput,
    UserRegistrationResult,
    UserStatus,
    VerifyEmailSignal,
    permissions_for,
)
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.names import QueryName, SignalName, WorkflowType
from services.auth.activities import (
    components,
    issue_reauthentication,
    now_utc,
    revoke_all_sessions,
)
from services.auth.models import (
    AuthPolicy,
    ExchangeRequest,
    LoginRequest,
    Me,
    MfaConfirmed,
    MfaConfirmRequest,
    MfaSecretRow,
    MfaSecretStatus,
    MfaSetupChallenge,
    OperationStarted,
    PasswordResetConfirm,
    PasswordResetDone,
    PasswordResetRequest,
    PermissionAnswer,
    PermissionCheckRequest,
    Reauthenticated,
    ReauthenticateRequest,
    RefreshRequest,
    RegisterRequest,
    SessionRecord,
    SessionState,
    SessionView,
    TokenPurpose,
    TokenResponse,
    UserRow,
    UserSummary,
    VerifyRequest,
    VerifyResponse,
)
from services.auth.security import (
    hash_password,
    needs_rehash,
    new_recovery_codes,
    new_totp_secret,
    recovery_code_hash,
    token_hash,
    totp_step,
    totp_uri,
    verify_password,
)
from services.common.errors import ServiceError, security_log
from services.common.http import json as json_response
from services.common.http import parse_body
from services.common.openapi import Doc, Endpoint
from services.common.service import ServiceRuntime
from workflow_client.errors import TemporalUnavailable, WorkflowClientError
from workflow_client.operations import new_operation_id

log = structlog.stdlib.get_logger(__name__)

INVALID_CREDENTIALS = "invalid email or password"
INVALID_LINK = "the link is invalid or has expired"


@dataclass(frozen=True)
class Caller:
    claims: TokenClaims
    session: SessionRecord
    context: RequestContext


def correlation_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("correlation_id")
    return value if isinstance(value, str) else None


@asynccontextmanager
async def temporal_calls() -> AsyncIterator[None]:
    """Temporal being down is a 503, not an internal error."""
    try:
        yield
    except TemporalUnavailable as error:
        raise ServiceError(ErrorKind.NETWORK, "the workflow service is unavailable") from error
    except WorkflowClientError as error:
        raise ServiceError(ErrorKind.CONFLICT, "the operation could not be started") from error


class AuthApi:
    def __init__(self, runtime: ServiceRuntime, policy: AuthPolicy) -> None:
        self.runtime = runtime
        self.parts = components(runtime)
        self.settings = runtime.settings
        self.store = self.parts.store
        self.sessions = self.parts.sessions
        self.policy = policy
        self._jwks = self.parts.keys.jwks()

    def routes(self) -> list[BaseRoute]:
        return [
            # Not proxied by the gateway: the BFFs' and services' key source, a dev helper.
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
            Route("/dev/outbox", self.dev_outbox, methods=["GET"]),
            Endpoint(
                "/api/auth/register",
                self.register,
                "POST",
                Doc(
                    "register: a pending account and its user_registration operation (one per "
                    "address: asking again finds the running one)",
                    {202: OperationStarted},
                    body=RegisterRequest,
                    public=True,
                    errors=(409,),
                    description="The operation runs in the anonymous pseudo-tenant: no "
                    "session can read it through /api/workflows.",
                ),
            ),
            Endpoint(
                "/api/auth/verify",
                self.verify,
                "GET",
                Doc(
                    "the verification link: activates the account (202 while it finishes)",
                    {200: VerifyResponse, 202: VerifyResponse},
                    query=VerifyRequest,
                    public=True,
                ),
            ),
            Endpoint(
                "/api/auth/verify",
                self.verify,
                "POST",
                Doc(
                    "verify an address with the token of its link (202 while it finishes)",
                    {200: VerifyResponse, 202: VerifyResponse},
                    body=VerifyRequest,
                    public=True,
                ),
            ),
            Endpoint(
                "/api/auth/login",
                self.login,
                "POST",
                Doc(
                    "sign in: a new session in the tenant asked for (else the first granted)",
                    {200: TokenResponse},
                    body=LoginRequest,
                    public=True,
                    errors=(401, 404),
                ),
            ),
            Endpoint(
                "/api/auth/refresh",
                self.refresh,
                "POST",
                Doc(
                    "a new token pair for a refresh token (which is used up)",
                    {200: TokenResponse},
                    body=RefreshRequest,
                    public=True,
                    errors=(401,),
                ),
            ),
            Endpoint(
                "/api/auth/logout",
                self.logout,
                "POST",
                Doc("end the caller's session", {204: None}),
            ),
            Endpoint(
                "/api/auth/sessions",
                self.list_sessions,
                "GET",
                Doc("the caller's live sessions", {200: list[SessionView]}),
            ),
            Endpoint(
                "/api/auth/sessions/exchange",
                self.exchange,
                "POST",
                Doc(
                    "tokens for a session a workflow created, against its one-time code",
                    {200: TokenResponse},
                    body=ExchangeRequest,
                    public=True,
                    errors=(401, 409),
                ),
            ),
            Endpoint(
                "/api/auth/reauthenticate",
                self.reauthenticate,
                "POST",
                Doc(
                    "prove the password (and second factor) again, for an act that cannot be "
                    "undone: a single-use proof valid for minutes (the user's own erasure)",
                    {200: Reauthenticated},
                    body=ReauthenticateRequest,
                    errors=(401,),
                ),
            ),
            Endpoint(
                "/api/auth/sessions/{session_id}",
                self.delete_session,
                "DELETE",
                Doc("end one of the caller's sessions", {204: None}),
            ),
            Endpoint(
                "/api/auth/password-reset/request",
                self.reset_request,
                "POST",
                Doc(
                    "ask for a reset link: the same answer whether the address has an account",
                    {202: OperationStarted},
                    body=PasswordResetRequest,
                    public=True,
                    description="Every request gets a password_reset operation id of the same "
                    "form (no account enumeration); without an active account the operation "
                    "ends at once and no email is sent. The operation runs in the anonymous "
                    "pseudo-tenant: no session can read it.",
                ),
            ),
            Endpoint(
                "/api/auth/password-reset/confirm",
                self.reset_confirm,
                "POST",
                Doc(
                    "set the new password with the token of the reset link (202 while the "
                    "sessions are being ended)",
                    {200: PasswordResetDone, 202: PasswordResetDone},
                    body=PasswordResetConfirm,
                    public=True,
                    errors=(409,),
                ),
            ),
            Endpoint(
                "/api/auth/mfa/setup",
                self.mfa_setup,
                "POST",
                Doc(
                    "start an MFA setup (replacing a pending one): the TOTP secret and its "
                    "mfa_setup operation",
                    {202: MfaSetupChallenge},
                    errors=(409,),
                ),
            ),
            Endpoint(
                "/api/auth/mfa/setup",
                self.mfa_pending,
                "GET",
                Doc(
                    "the caller's MFA setup waiting for its code (404 when none): the same "
                    "secret again until it expires",
                    {200: MfaSetupChallenge},
                ),
            ),
            Endpoint(
                "/api/auth/mfa/confirm",
                self.mfa_confirm,
                "POST",
                Doc(
                    "confirm the pending MFA setup with a code: the recovery codes, shown once "
                    "(202 while the code is still being checked)",
                    {200: MfaConfirmed, 202: MfaConfirmed},
                    body=MfaConfirmRequest,
                    errors=(409,),
                ),
            ),
            Endpoint(
                "/api/auth/me",
                self.me,
                "GET",
                Doc("the caller's account, session, tenant and grants", {200: Me}),
            ),
            Endpoint(
                "/api/auth/session",
                self.session_state,
                "GET",
                Doc(
                    "the state of the token's session (open, or since when ended) and the "
                    "roles its grant has now",
                    {200: SessionState},
                ),
            ),
            Endpoint(
                "/api/auth/permissions/check",
                self.check_permission,
                "POST",
                Doc(
                    "whether the caller's current roles in its tenant grant a permission",
                    {200: PermissionAnswer},
                    body=PermissionCheckRequest,
                ),
            ),
        ]

    # Identity ------------------------------------------------------------------------------

    async def caller(self, request: Request) -> Caller:
        """The verified access token *and* its session, which must still be live."""
        claims = self._access_claims(request)
        session = await self.sessions.get(claims.sid)
        if session is None or session.user_id != claims.sub or not session.active(now_utc()):
            raise ServiceError(ErrorKind.AUTHENTICATION, "the session has ended")
        return Caller(claims, session, claims.context(correlation_id(request)))

    def _access_claims(self, request: Request) -> TokenClaims:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise ServiceError(ErrorKind.AUTHENTICATION, "a bearer token is required")
        try:
            return self.runtime.verifier.verify(token, TokenType.ACCESS)
        except InvalidToken as error:
            raise ServiceError(ErrorKind.AUTHENTICATION, str(error)) from error

    def _anonymous(self, request: Request, user_id: str) -> RequestContext:
        """Before login there is no tenant: registration and reset run under a pseudo one."""
        return RequestContext(
            user_id=user_id, tenant_id=ANONYMOUS_TENANT, correlation_id=correlation_id(request)
        )

    # Public keys and dev helpers -------------------------------------------------------------

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse(self._jwks, headers={"cache-control": "public, max-age=300"})

    async def dev_outbox(self, request: Request) -> Response:
        if self.settings.environment is not Environment.DEV:
            raise ServiceError(ErrorKind.NOT_FOUND, "not found")
        entries = await self.parts.outbox.recent(limit=50, to=request.query_params.get("to"))
        return json_response(entries)

    # Registration -------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        body = await parse_body(request, RegisterRequest)
        password_hash = await hash_password(body.password)
        user, _ = await self.store.register_pending_user(body.email, password_hash, now_utc())
        context = self._anonymous(request, user.id)
        workflow_input = UserRegistrationInput(
            user_id=user.id, expires_in_seconds=self.policy.registration_expires_in_seconds
        )
        # One pending address is one operation: repeating the request (with the same or another
        # Idempotency-Key) finds the running registration instead of starting a second one.
        key = user.id
        async with temporal_calls():
            operation = await self.runtime.operations.start(
                context, WorkflowType.USER_REGISTRATION.value, workflow_input, request_key=key
            )
            if operation.status.is_terminal:  # an earlier registration ended without cleanup
                operation = await self.runtime.operations.start(
                    context, WorkflowType.USER_REGISTRATION.value, workflow_input
                )
        return json_response(OperationStarted(operation_id=operation.id), status=202)

    async def verify(self, request: Request) -> Response:
        if request.method == "GET":
            body = VerifyRequest.model_validate({"token": request.query_params.get("token", "")})
        else:
            body = await parse_body(request, VerifyRequest)
        token = await self.store.token_by_hash(TokenPurpose.VERIFY_EMAIL, token_hash(body.token))
        if token is None or token.workflow_id is None:
            raise _invalid_link()
        user = await self.store.get_user(token.user_id)
        if token.used_at is not None and user is not None and user.status is UserStatus.ACTIVE:
            # The link clicked a second time: the address is verified already.
            return json_response(VerifyResponse(user_id=user.id, status=user.status.value))
        if not token.usable(now_utc()) or user is None:
            raise _invalid_link()
        handle = self.runtime.client.get_workflow_handle(
            token.workflow_id, result_type=UserRegistrationResult
        )
        await self._signal(
            handle,
            self._anonymous(request, token.user_id),
            SignalName.VERIFY_EMAIL.value,
            VerifyEmailSignal(token_id=token.id),
            gone=_invalid_link(),  # the registration has expired meanwhile
        )
        try:
            result = await asyncio.wait_for(handle.result(), self.policy.wait_seconds)
        except TimeoutError:
            return json_response(
                VerifyResponse(user_id=user.id, status="verifying", operation_id=handle.id),
                status=202,
            )
        except WorkflowFailureError as error:
            raise _invalid_link() from error
        return json_response(
            VerifyResponse(
                user_id=result.user_id, status=result.status.value, operation_id=handle.id
            )
        )

    async def _signal(
        self,
        handle: WorkflowHandle[Any, Any],
        context: RequestContext,
        signal: str,
        argument: BaseModel,
        *,
        gone: ServiceError | None = None,
    ) -> bool:
        """Signals a waiting workflow; False (or ``gone`` raised) if it has ended."""
        try:
            with use_context(context):
                await handle.signal(signal, argument)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                if gone is not None:
                    raise gone from error
                return False
            raise ServiceError(ErrorKind.NETWORK, "the workflow service is unavailable") from error
        return True

    # Login and sessions -------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        body = await parse_body(request, LoginRequest)
        user = await self.store.user_by_email(body.email)
        # The same answer, in about the same time, for an unknown address and a wrong password.
        valid = await verify_password(user.password_hash if user else None, body.password)
        if user is None or not valid:
            raise ServiceError(ErrorKind.AUTHENTICATION, INVALID_CREDENTIALS)
        if user.status is UserStatus.PENDING:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the email address is not verified yet")
        if user.status is not UserStatus.ACTIVE:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is deactivated")
        if needs_rehash(user.password_hash):
            await self.store.set_password(user.id, await hash_password(body.password), now_utc())
        if user.mfa_enabled:
            await self._second_factor(user, body.totp_code, body.recovery_code)
        tenant_id, roles = await self._tenant_for(user, body.tenant_id)
        tokens = await self._open_session(user, tenant_id, roles, request)
        return json_response(tokens)

    async def reauthenticate(self, request: Request) -> Response:
        """The caller (a live session) gives their password again, and their second factor
        when they have one; the answer is a single-use proof for one irreversible act."""
        caller = await self.caller(request)
        body = await parse_body(request, ReauthenticateRequest)
        user = await self.store.get_user(caller.claims.sub)
        if user is None or not await verify_password(user.password_hash, body.password):
            security_log.warning("security.reauthentication_failed", user_id=caller.claims.sub)
            raise ServiceError(ErrorKind.AUTHENTICATION, INVALID_CREDENTIALS)
        if user.mfa_enabled:
            await self._second_factor(user, body.totp_code, body.recovery_code)
        proof, expires_at = await issue_reauthentication(self.store, user.id)
        return json_response(Reauthenticated(reauthentication=proof, expires_at=expires_at))

    async def _second_factor(
        self, user: UserRow, totp_code: str | None, recovery_code: str | None
    ) -> None:
        if totp_code is not None:
            secrets = await self.store.mfa_secrets_for_user(user.id, MfaSecretStatus.ACTIVE)
            if secrets:
                secret = secrets[0]
                plain = self.parts.box.decrypt(secret.secret_ciphertext, secret.id)
                step = totp_step(plain, totp_code)
                # A code is good once (a replayed code within its 30 s window is refused).
                if step is not None and await self.store.use_totp_step(secret.id, step):
                    return
            raise ServiceError(
                ErrorKind.AUTHENTICATION,
                "invalid one-time code",
                fields={"totp_code": "invalid or already used"},
            )
        if recovery_code is not None:
            code = recovery_code_hash(recovery_code)
            if await self.store.use_recovery_code(user.id, code, now_utc()):
                return
            raise ServiceError(
                ErrorKind.AUTHENTICATION,
                "invalid recovery code",
                fields={"recovery_code": "invalid or already used"},
            )
        raise ServiceError(
            ErrorKind.AUTHENTICATION,
            "a one-time code is required",
            fields={"totp_code": "required: multi-factor authentication is enabled"},
        )

    async def _tenant_for(self, user: UserRow, tenant_id: str | None) -> tuple[str, list[str]]:
        if tenant_id is not None:
            grant = await self.store.active_grant(user.id, tenant_id)
            if grant is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "tenant not found")
            return grant.tenant_id, grant.roles
        grants = [
            g for g in await self.store.grants_for_user(user.id) if g.status is GrantStatus.ACTIVE
        ]
        if not grants:
            return NO_TENANT, []
        return grants[0].tenant_id, grants[0].roles

    async def _open_session(
        self, user: UserRow, tenant_id: str, roles: list[str], request: Request
    ) -> TokenResponse:
        now = now_utc()
        session_id = str(uuid.uuid4())
        user_agent = (request.headers.get("user-agent") or "")[:300] or None
        refresh = self._issue(user, tenant_id, session_id, roles, TokenType.REFRESH)
        await self.sessions.create(
            SessionRecord(
                id=session_id,
                user_id=user.id,
                tenant_id=tenant_id,
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
                refresh_token_hash=token_hash(refresh),
                user_agent=user_agent,
            )
        )
        return self._tokens(user, tenant_id, session_id, roles, refresh)

    def _issue(
        self,
        user: UserRow,
        tenant_id: str,
        session_id: str,
        roles: list[str],
        token_type: TokenType,
    ) -> str:
        token, _ = self.parts.keys.issue(
            self.settings,
            user_id=user.id,
            tenant_id=tenant_id,
            session_id=session_id,
            token_type=token_type,
            roles=roles,
            email=user.email,
        )
        return token

    def _tokens(
        self, user: UserRow, tenant_id: str, session_id: str, roles: list[str], refresh: str
    ) -> TokenResponse:
        return TokenResponse(
            access_token=self._issue(user, tenant_id, session_id, roles, TokenType.ACCESS),
            refresh_token=refresh,
            expires_in=self.settings.access_token_ttl_seconds,
            session_id=session_id,
            user=UserSummary(id=user.id, email=user.email),
            tenant_id=tenant_id,
            roles=roles,
        )

    async def _session_roles(self, record: SessionRecord) -> tuple[UserRow, list[str]]:
        """The session's user and current roles; the session ends if either is gone."""
        user = await self.store.get_user(record.user_id)
        if user is None or user.status is not UserStatus.ACTIVE:
            await self.sessions.revoke(record.id, now_utc())
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is not active")
        if record.tenant_id == NO_TENANT:
            return user, []
        grant = await self.store.active_grant(user.id, record.tenant_id)
        if grant is None:
            await self.sessions.revoke(record.id, now_utc())
            raise ServiceError(ErrorKind.AUTHENTICATION, "access to the tenant has ended")
        return user, grant.roles

    async def refresh(self, request: Request) -> Response:
        body = await parse_body(request, RefreshRequest)
        try:
            claims = self.runtime.verifier.verify(body.refresh_token, TokenType.REFRESH)
        except InvalidToken as error:
            raise ServiceError(ErrorKind.AUTHENTICATION, "invalid refresh token") from error
        record = await self.sessions.get(claims.sid)
        now = now_utc()
        if record is None or record.user_id != claims.sub or not record.active(now):
            raise ServiceError(ErrorKind.AUTHENTICATION, "the session has ended")
        presented = token_hash(body.refresh_token)
        if presented != record.refresh_token_hash:
            # An old refresh token came back: someone may hold a copy. End the session.
            await self.sessions.revoke(record.id, now)
            security_log.warning(
                "security.refresh_token_reuse", session_id=record.id, user_id=record.user_id
            )
            raise ServiceError(ErrorKind.AUTHENTICATION, "the refresh token was already used")
        user, roles = await self._session_roles(record)
        refresh = self._issue(user, record.tenant_id, record.id, roles, TokenType.REFRESH)
        if not await self.sessions.rotate_refresh(record.id, presented, token_hash(refresh), now):
            raise ServiceError(ErrorKind.AUTHENTICATION, "the refresh token was already used")
        return json_response(self._tokens(user, record.tenant_id, record.id, roles, refresh))

    async def exchange(self, request: Request) -> Response:
        """Tokens for a session a workflow created (``auth.create_session``), once."""
        body = await parse_body(request, ExchangeRequest)
        now = now_utc()
        token = await self.store.consume_by_hash(
            TokenPurpose.SESSION_EXCHANGE, token_hash(body.code), now
        )
        record = await self.sessions.get(token.subject_id) if token and token.subject_id else None
        if token is None or record is None or not record.active(now):
            raise ServiceError(
                ErrorKind.VALIDATION, INVALID_LINK, fields={"code": "invalid or expired"}
            )
        user, roles = await self._session_roles(record)
        refresh = self._issue(user, record.tenant_id, record.id, roles, TokenType.REFRESH)
        if not await self.sessions.rotate_refresh(record.id, "", token_hash(refresh), now):
            raise ServiceError(ErrorKind.CONFLICT, "the session was already handed out")
        return json_response(self._tokens(user, record.tenant_id, record.id, roles, refresh))

    async def logout(self, request: Request) -> Response:
        caller = await self.caller(request)
        await self.sessions.revoke(caller.session.id, now_utc())
        return Response(status_code=204)

    async def list_sessions(self, request: Request) -> Response:
        caller = await self.caller(request)
        now = now_utc()
        views = [
            SessionView(
                id=record.id,
                tenant_id=record.tenant_id,
                created_at=record.created_at,
                expires_at=record.expires_at,
                last_refreshed_at=record.refreshed_at,
                user_agent=record.user_agent,
                current=record.id == caller.session.id,
            )
            for record in await self.sessions.for_user(caller.claims.sub)
            if record.active(now)
        ]
        return json_response(views)

    async def delete_session(self, request: Request) -> Response:
        caller = await self.caller(request)
        session_id = request.path_params["session_id"]
        record = await self.sessions.get(session_id)
        if record is None or record.user_id != caller.claims.sub:
            if record is not None:
                security_log.warning(
                    "security.cross_account_access",
                    resource="session",
                    caller_user_id=caller.claims.sub,
                    caller_tenant_id=caller.claims.tid,
                )
            raise ServiceError(ErrorKind.NOT_FOUND, "session not found")
        await self.sessions.revoke(record.id, now_utc())
        return Response(status_code=204)

    # Password reset -----------------------------------------------------------------------

    async def reset_request(self, request: Request) -> Response:
        body = await parse_body(request, PasswordResetRequest)
        user = await self.store.user_by_email(body.email)
        user_id = user.id if user is not None and user.status is UserStatus.ACTIVE else None
        # Every request starts an operation, under an id of the same form (no user id in it):
        # the same answer, after the same work, whether the address has an account or not.
        # Started before the answer, so a request that was accepted is never lost. The
        # workflow acts as the account's user (revoking the sessions is the user's own act).
        operation_id = new_operation_id(
            WorkflowType.PASSWORD_RESET.value,
            RequestContext(user_id=ANONYMOUS_USER, tenant_id=ANONYMOUS_TENANT),
            None,
        )
        workflow_input = PasswordResetInput(
            user_id=user_id, expires_in_seconds=self.policy.password_reset_expires_in_seconds
        )
        async with temporal_calls():
            await self.runtime.operations.start(
                self._anonymous(request, user_id or ANONYMOUS_USER),
                WorkflowType.PASSWORD_RESET.value,
                workflow_input,
                operation_id=operation_id,
            )
        return json_response(OperationStarted(operation_id=operation_id), status=202)

    async def reset_confirm(self, request: Request) -> Response:
        body = await parse_body(request, PasswordResetConfirm)
        token = await self.store.token_by_hash(TokenPurpose.PASSWORD_RESET, token_hash(body.token))
        if token is None or token.workflow_id is None:
            raise _invalid_link()
        if token.used_at is not None:
            raise _link_used()
        if not token.usable(now_utc()):
            raise _invalid_link()
        password_hash = await hash_password(body.new_password)
        if not await self.store.consume_reset_token(
            token.id, token.user_id, password_hash, now_utc()
        ):
            raise _link_used()  # another request used it a moment ago
        handle = self.runtime.client.get_workflow_handle(
            token.workflow_id, result_type=PasswordResetResult
        )
        signalled = await self._signal(
            handle,
            self._anonymous(request, token.user_id),
            SignalName.RESET_PASSWORD.value,
            ResetPasswordSignal(token_id=token.id),
        )
        if signalled:
            try:
                result = await asyncio.wait_for(handle.result(), self.policy.wait_seconds)
            except TimeoutError:
                return json_response(
                    PasswordResetDone(status="reset", operation_id=handle.id), status=202
                )
            except WorkflowFailureError:
                pass
            else:
                return json_response(
                    PasswordResetDone(
                        status="reset",
                        sessions_revoked=result.sessions_revoked,
                        operation_id=handle.id,
                    )
                )
        # The workflow is gone (it expired a moment ago): the sessions end anyway.
        revoked = await revoke_all_sessions(self.sessions, token.user_id)
        return json_response(PasswordResetDone(status="reset", sessions_revoked=revoked))

    # MFA ----------------------------------------------------------------------------------

    async def mfa_setup(self, request: Request) -> Response:
        caller = await self.caller(request)
        user = await self.store.get_user(caller.claims.sub)
        if user is None or user.status is not UserStatus.ACTIVE:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is not active")
        if user.mfa_enabled:
            raise ServiceError(ErrorKind.CONFLICT, "multi-factor authentication is enabled")
        await self._cancel_pending_setups(caller, user.id)
        now = now_utc()
        plain = new_totp_secret()
        secret_id = str(uuid.uuid4())
        await self.store.add_mfa_secret(
            MfaSecretRow(
                id=secret_id,
                user_id=user.id,
                secret_ciphertext=self.parts.box.encrypt(plain, secret_id),
                status=MfaSecretStatus.PENDING,
                workflow_id=None,
                created_at=now,
                confirmed_at=None,
                last_used_step=0,
            )
        )
        expires_in = self.policy.mfa_setup_expires_in_seconds
        async with temporal_calls():
            operation = await self.runtime.operations.start(
                caller.context,
                WorkflowType.MFA_SETUP.value,
                MfaSetupInput(
                    user_id=user.id,
                    secret_id=secret_id,
                    expires_in_seconds=expires_in,
                    max_attempts=self.policy.mfa_max_attempts,
                ),
            )
        await self.store.attach_mfa_workflow(secret_id, operation.id)
        # The workflow only ever sees the secret's id; the secret goes to its owner only.
        return _secret_response(
            MfaSetupChallenge(
                operation_id=operation.id,
                secret=plain,
                otpauth_uri=totp_uri(plain, user.email),
                expires_at=now + timedelta(seconds=expires_in),
            ),
            status=202,
        )

    async def mfa_pending(self, request: Request) -> Response:
        """The caller's setup still waiting for its code, with its secret again (so a page
        reloaded during the setup can show the QR code once more); 404 when there is none:
        never started, confirmed, replaced, failed or expired."""
        caller = await self.caller(request)
        user = await self.store.get_user(caller.claims.sub)
        if user is None or user.status is not UserStatus.ACTIVE:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is not active")
        now = now_utc()
        lifetime = timedelta(seconds=self.policy.mfa_setup_expires_in_seconds)
        for secret in await self.store.mfa_secrets_for_user(user.id, MfaSecretStatus.PENDING):
            # The setup endpoint stored the secret at the moment its expiry counts from.
            expires_at = secret.created_at + lifetime
            if secret.workflow_id is None or expires_at <= now:
                continue
            plain = self.parts.box.decrypt(secret.secret_ciphertext, secret.id)
            return _secret_response(
                MfaSetupChallenge(
                    operation_id=secret.workflow_id,
                    secret=plain,
                    otpauth_uri=totp_uri(plain, user.email),
                    expires_at=expires_at,
                )
            )
        raise ServiceError(ErrorKind.NOT_FOUND, "no multi-factor setup is in progress")

    async def _cancel_pending_setups(self, caller: Caller, user_id: str) -> None:
        """A new setup replaces one still waiting for its code."""
        for secret in await self.store.mfa_secrets_for_user(user_id, MfaSecretStatus.PENDING):
            await self.store.discard_mfa_secret(secret.id)
            if secret.workflow_id is not None:
                handle = self.runtime.client.get_workflow_handle(secret.workflow_id)
                try:
                    with use_context(caller.context):
                        await handle.cancel()
                except RPCError as error:
                    if error.status is not RPCStatusCode.NOT_FOUND:
                        raise ServiceError(
                            ErrorKind.NETWORK, "the workflow service is unavailable"
                        ) from error

    async def mfa_confirm(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await parse_body(request, MfaConfirmRequest)
        no_setup = ServiceError(ErrorKind.CONFLICT, "no multi-factor setup is in progress")
        pending = [
            secret
            for secret in await self.store.mfa_secrets_for_user(
                caller.claims.sub, MfaSecretStatus.PENDING
            )
            if secret.workflow_id is not None
        ]
        if not pending or pending[0].workflow_id is None:
            raise no_setup
        handle = self.runtime.client.get_workflow_handle(pending[0].workflow_id)
        codes = new_recovery_codes()
        attempt_id = str(uuid.uuid4())
        await self._signal(
            handle,
            caller.context,
            SignalName.CONFIRM_MFA.value,
            ConfirmMfaSignal(
                attempt_id=attempt_id,
                code=body.code,
                recovery_code_hashes=[recovery_code_hash(code) for code in codes],
            ),
            gone=no_setup,
        )
        outcome = await self._attempt_outcome(handle, caller.context, attempt_id)
        if outcome is None:
            # Still being processed: the codes are handed out now or never.
            return json_response(
                MfaConfirmed(mfa_enabled=False, recovery_codes=codes, operation_id=handle.id),
                status=202,
            )
        if outcome.status is MfaAttemptStatus.ACCEPTED:
            return json_response(
                MfaConfirmed(mfa_enabled=True, recovery_codes=codes, operation_id=handle.id)
            )
        if outcome.attempts_left <= 0:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "too many invalid codes: start the multi-factor setup again",
                fields={"code": "invalid"},
            )
        raise ServiceError(
            ErrorKind.VALIDATION,
            f"the code is not valid ({outcome.attempts_left} attempts left)",
            fields={"code": "invalid"},
        )

    async def _attempt_outcome(
        self, handle: WorkflowHandle[Any, Any], context: RequestContext, attempt_id: str
    ) -> MfaAttempt | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.wait_seconds
        while loop.time() < deadline:
            try:
                with use_context(context):
                    outcome: MfaAttempt = await handle.query(
                        QueryName.MFA_ATTEMPT.value,
                        MfaAttemptRequest(attempt_id=attempt_id),
                        result_type=MfaAttempt,
                    )
            except RPCError as error:
                raise ServiceError(
                    ErrorKind.NETWORK, "the workflow service is unavailable"
                ) from error
            if outcome.status is not MfaAttemptStatus.PENDING:
                return outcome
            await asyncio.sleep(0.1)
        return None

    # Who am I, what may I do ----------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        caller = await self.caller(request)
        user = await self.store.get_user(caller.claims.sub)
        if user is None:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the account is not active")
        grants = await self.store.grants_for_user(user.id)
        current = next((g for g in grants if g.tenant_id == caller.claims.tid), None)
        return json_response(
            Me(
                user=user.public(),
                tenant_id=caller.claims.tid,
                roles=current.roles if current and current.status is GrantStatus.ACTIVE else [],
                session_id=caller.session.id,
                tenants=[grant.public() for grant in grants],
            )
        )

    async def session_state(self, request: Request) -> Response:
        """For tokens whose session may have just ended (the gateway and the BFFs count an
        ending within their check interval, so a request in flight during a tenant switch
        finishes); any other caller uses ``caller``, which refuses an ended session."""
        claims = self._access_claims(request)
        session = await self.sessions.get(claims.sid)
        if session is None or session.user_id != claims.sub:
            raise ServiceError(ErrorKind.AUTHENTICATION, "the session has ended")
        now = now_utc()
        ended_at = None if session.active(now) else (session.revoked_at or session.expires_at)
        grant = await self.store.active_grant(claims.sub, claims.tid)
        return json_response(
            SessionState(
                session_id=session.id,
                open=ended_at is None,
                ended_seconds_ago=None if ended_at is None else (now - ended_at).total_seconds(),
                roles=grant.roles if grant else [],
            )
        )

    async def check_permission(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await parse_body(request, PermissionCheckRequest)
        # The store's grant, not the token's roles: a role removed a minute ago counts.
        grant = await self.store.active_grant(caller.claims.sub, caller.claims.tid)
        roles = grant.roles if grant else []
        return json_response(
            PermissionAnswer(
                permission=body.permission,
                allowed=body.permission in permissions_for(roles),
                tenant_id=caller.claims.tid,
                roles=roles,
            )
        )


def _secret_response(challenge: MfaSetupChallenge, status: int = 200) -> Response:
    response = json_response(challenge, status=status)
    response.headers["cache-control"] = "no-store"  # a secret: no copy in any cache
    return response


def _invalid_link() -> ServiceError:
    return ServiceError(ErrorKind.VALIDATION, INVALID_LINK, fields={"token": "invalid or expired"})


def _link_used() -> ServiceError:
    return ServiceError(
        ErrorKind.CONFLICT, "the link has already been used", fields={"token": "already used"}
    )


def routes(runtime: ServiceRuntime, policy: AuthPolicy | None = None) -> list[BaseRoute]:
    return AuthApi(runtime, policy or AuthPolicy()).routes()
