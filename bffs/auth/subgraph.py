"""Auth subgraph: ``me``; ``register``, ``verifyEmail``, ``login``, ``refreshToken``, ``logout``,
``requestPasswordReset``, ``resetPassword``, ``setupMfa``, ``confirmMfa``.

Every field calls the auth service through the gateway (``/api/auth/...``): the public ones
without a token, the others with the caller's. Registration, password reset and MFA setup run
as workflows in the auth service; their operation ids come back as Operation entities, to which
this subgraph adds ``mfaSetup`` (the pending setup's secret, for its owner only).
Nothing here is cached: these answers are about sessions, which logout and revocation end.
"""

from __future__ import annotations

from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel
from strawberry.types import Info

from bffs.auth.types import (
    AuthPayload,
    Me,
    MeData,
    MfaConfirmedData,
    MfaConfirmPayload,
    MfaSetupData,
    Operation,
    OperationStartedData,
    PasswordResetDoneData,
    PasswordResetPayload,
    RegisterInput,
    TenantRef,
    TokenData,
    User,
    VerifyData,
    VerifyEmailPayload,
)
from contracts.names import WorkflowType
from gateway_client import GatewayError, GatewayUnauthorized
from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, camel, from_gateway_error
from graph.permissions import IsAuthenticated
from graph.runtime import Subgraph

M = TypeVar("M", bound=BaseModel)


def _client_error(error: GatewayError) -> ClientError:
    """The auth service's answers as GraphQL errors. Its 401 texts are meant for the user
    ("invalid email or password", "a one-time code is required"), so they are kept; field
    names are given as the schema spells them."""
    if not isinstance(error, GatewayUnauthorized):
        return from_gateway_error(error)
    mapped = ClientError(ErrorCode.UNAUTHENTICATED, error.detail or "authentication required")
    if error.errors:
        mapped.extensions["fields"] = [
            {"field": camel(item.field), "message": item.message} for item in error.errors
        ]
    return mapped


async def _send(
    info: Info[GraphContext, Any], path: str, body: dict[str, Any] | None, *, signed_in: bool
) -> Any:
    """POST ``path`` to the auth service, as the caller (``signed_in``) or anonymously;
    returns the parsed answer (None for an empty one)."""
    context = info.context
    who = await context.require_identity() if signed_in else None
    try:
        return await context.deps.gateway.send_json(
            who,
            "POST",
            path,
            token=context.token if signed_in else None,
            json=body,
            correlation_id=context.correlation_id,
        )
    except GatewayError as error:
        raise _client_error(error) from error


async def _post(
    info: Info[GraphContext, Any],
    path: str,
    body: dict[str, Any] | None,
    model: type[M],
    *,
    signed_in: bool = False,
) -> M:
    return model.model_validate(await _send(info, path, body, signed_in=signed_in))


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info[GraphContext, Any]) -> Me:
        context = info.context
        who = await context.require_identity()
        try:
            data = await context.deps.gateway.get_json(
                who, "/api/auth/me", token=context.token, correlation_id=context.correlation_id
            )
        except GatewayError as error:
            raise _client_error(error) from error
        return Me.of(MeData.model_validate(data))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Starts user_registration: a verification email is sent; the account is "
        "active once its link is used (verifyEmail). The operation runs in the auth service's "
        "anonymous pseudo-tenant (there is no session yet), so no session can read it through "
        "operation/operations later, not even the new user's: verifyEmail reports the outcome."
    )
    async def register(self, info: Info[GraphContext, Any], input: RegisterInput) -> Operation:
        started = await _post(
            info,
            "/api/auth/register",
            {"email": input.email, "password": input.password},
            OperationStartedData,
        )
        info.context.deps.metrics.workflow_started(WorkflowType.USER_REGISTRATION.value)
        return Operation.of(started.operation_id)

    @strawberry.mutation(description="The token from the verification email's link.")
    async def verify_email(self, info: Info[GraphContext, Any], token: str) -> VerifyEmailPayload:
        return VerifyEmailPayload.of(
            await _post(info, "/api/auth/verify", {"token": token}, VerifyData)
        )

    @strawberry.mutation
    async def login(
        self,
        info: Info[GraphContext, Any],
        email: str,
        password: str,
        tenant_id: strawberry.ID | None = None,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> AuthPayload:
        body: dict[str, Any] = {"email": email, "password": password}
        optional = {
            "tenant_id": tenant_id,
            "totp_code": totp_code,
            "recovery_code": recovery_code,
        }
        body.update({name: str(value) for name, value in optional.items() if value is not None})
        return AuthPayload.of(await _post(info, "/api/auth/login", body, TokenData))

    @strawberry.mutation(description="A new token pair; the refresh token given is used up.")
    async def refresh_token(self, info: Info[GraphContext, Any], refresh_token: str) -> AuthPayload:
        return AuthPayload.of(
            await _post(info, "/api/auth/refresh", {"refresh_token": refresh_token}, TokenData)
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Ends the caller's session."
    )
    async def logout(self, info: Info[GraphContext, Any]) -> bool:
        await _send(info, "/api/auth/logout", None, signed_in=True)
        return True

    @strawberry.mutation(
        description="Starts password_reset: a reset link is emailed when the address belongs to "
        "an active account. Every request gets an operation, and the answer is the same either "
        "way (no account enumeration): an operation id of the same form, at once. Without an "
        "account the operation ends at once and sends nothing. Like register's, it runs in the "
        "anonymous pseudo-tenant: no session can read it through operation/operations."
    )
    async def request_password_reset(self, info: Info[GraphContext, Any], email: str) -> Operation:
        started = await _post(
            info, "/api/auth/password-reset/request", {"email": email}, OperationStartedData
        )
        info.context.deps.metrics.workflow_started(WorkflowType.PASSWORD_RESET.value)
        return Operation.of(started.operation_id)

    @strawberry.mutation(description="The token from the reset email's link.")
    async def reset_password(
        self, info: Info[GraphContext, Any], token: str, new_password: str
    ) -> PasswordResetPayload:
        done = await _post(
            info,
            "/api/auth/password-reset/confirm",
            {"token": token, "new_password": new_password},
            PasswordResetDoneData,
        )
        return PasswordResetPayload.of(done)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Starts mfa_setup (a setup still waiting for its code is cancelled): its "
        "mfaSetup field holds the TOTP secret, and operation(id) shows it again until the "
        "setup ends; confirmMfa with a code from the secret finishes it.",
    )
    async def setup_mfa(self, info: Info[GraphContext, Any]) -> Operation:
        started = await _post(info, "/api/auth/mfa/setup", None, MfaSetupData, signed_in=True)
        info.context.deps.metrics.workflow_started(WorkflowType.MFA_SETUP.value)
        return Operation(id=strawberry.ID(started.operation_id), challenge=started)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def confirm_mfa(self, info: Info[GraphContext, Any], code: str) -> MfaConfirmPayload:
        confirmed = await _post(
            info, "/api/auth/mfa/confirm", {"code": code}, MfaConfirmedData, signed_in=True
        )
        return MfaConfirmPayload.of(confirmed)


SUBGRAPH = Subgraph(name="auth", query=Query, mutation=Mutation, types=(User, TenantRef, Operation))
