"""The auth service's workflows: user_registration, password_reset and mfa_setup.

Each waits for a person (a link clicked, a code typed) with a deadline, reports progress through
the ``progress`` query and undoes its steps on failure, expiry or cancellation (a saga). Secrets
never enter history: inputs, signals and results carry ids and hashes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.auth import (
        AuthActivity,
        ConfirmMfaSignal,
        EnableMfaInput,
        GrantTenantAccessInput,
        MfaAttempt,
        MfaAttemptRequest,
        MfaAttemptStatus,
        MfaCodeCheck,
        MfaSecretInput,
        MfaSetupInput,
        MfaSetupResult,
        PasswordResetInput,
        PasswordResetResult,
        PasswordResetStatus,
        ResetPasswordSignal,
        RevokedSessions,
        RevokeTenantAccessInput,
        RevokeUserSessionsInput,
        SendTokenEmailInput,
        TenantAccessRevoked,
        TenantGrant,
        TokenInput,
        TokenIssued,
        TokenState,
        UserChange,
        UserInput,
        UserRegistrationInput,
        UserRegistrationResult,
        VerifyEmailSignal,
        VerifyMfaCodeInput,
        VerifyTokenInput,
    )
    from contracts.context import current_context
    from contracts.errors import ErrorKind, error_kind
    from contracts.names import QueryName, SignalName, TaskQueue, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY
    from services.common.saga import Saga, root_cause

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED

R = TypeVar("R", bound=BaseModel)

STEP_TIMEOUT = timedelta(seconds=30)


async def call(activity: AuthActivity, arg: BaseModel, result_type: type[R]) -> R:
    result: R = await workflow.execute_activity(
        activity.value,
        arg,
        task_queue=TaskQueue.AUTH.value,
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=DEFAULT_RETRY,
        result_type=result_type,
    )
    return result


async def undo(activity: AuthActivity, arg: BaseModel, result_type: type[R]) -> R:
    result: R = await workflow.execute_activity(
        activity.value,
        arg,
        task_queue=TaskQueue.AUTH.value,
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=COMPENSATION_RETRY,
        result_type=result_type,
    )
    return result


def final(kind: ErrorKind, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind.value, non_retryable=True)


def refused(error: ActivityError) -> bool:
    """The activity refused the input (a bad link or code): the workflow keeps waiting."""
    cause = root_cause(error)
    return isinstance(cause, ApplicationError) and error_kind(cause.type) is ErrorKind.VALIDATION


async def wait_until(deadline: datetime, ready: Sequence[object]) -> bool:
    """Waits for something in ``ready`` until ``deadline``; False once the deadline passed."""
    remaining = (deadline - workflow.now()).total_seconds()
    if remaining <= 0:
        return bool(ready)
    try:
        await workflow.wait_condition(lambda: bool(ready), timeout=remaining)
    except TimeoutError:
        return bool(ready)
    return True


# Pinned: waits days for the link; each run ends on the build it began on.
@workflow.defn(name=WorkflowType.USER_REGISTRATION.value, versioning_behavior=PINNED)
class UserRegistrationWorkflow:
    """Verification email -> wait for the link (``verify_email`` signal) -> activate -> optional
    tenant grant. On expiry the pending user and its tokens are deleted and the workflow fails
    with a ValidationError "registration expired"."""

    def __init__(self) -> None:
        self._log = ProgressLog()
        self._signals: list[VerifyEmailSignal] = []

    @workflow.signal(name=SignalName.VERIFY_EMAIL.value)
    def verify_email(self, signal: VerifyEmailSignal) -> None:
        self._signals.append(signal)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: UserRegistrationInput) -> UserRegistrationResult:
        self._log.set_total(4 if input.tenant_id else 3)
        self._log.record(EventKind.STARTED)
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        user = UserInput(user_id=input.user_id)
        saga = Saga(self._log)
        # The register endpoint wrote the pending user before starting the workflow.
        saga.add_compensation(
            "create_pending_user", lambda: undo(AuthActivity.DISCARD_PENDING_USER, user, UserChange)
        )
        try:
            if input.tenant_id is not None:
                self._check_tenant(input.tenant_id)
            issued = await saga.step(
                "send_verification_email",
                lambda: call(
                    AuthActivity.SEND_VERIFICATION_EMAIL,
                    SendTokenEmailInput(
                        user_id=input.user_id,
                        workflow_id=workflow.info().workflow_id,
                        expires_at=deadline,
                    ),
                    TokenIssued,
                ),
            )
            await saga.step("verify_email", lambda: self._verification(input, issued, deadline))
            await saga.step(
                "activate_user",
                lambda: call(AuthActivity.ACTIVATE_USER, user, UserChange),
                lambda: undo(AuthActivity.REVERT_USER_ACTIVATION, user, UserChange),
            )
            if input.tenant_id is not None:
                tenant_id = input.tenant_id
                await saga.step(
                    "grant_tenant_access",
                    lambda: call(
                        AuthActivity.GRANT_TENANT_ACCESS,
                        GrantTenantAccessInput(
                            user_id=input.user_id, tenant_id=tenant_id, roles=input.roles
                        ),
                        TenantGrant,
                    ),
                    lambda: undo(
                        AuthActivity.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=input.user_id, tenant_id=tenant_id),
                        TenantAccessRevoked,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            # Not BaseException: a workflow evicted from the worker cache must not compensate.
            await saga.compensate()
            raise saga.failure(error) from None
        return UserRegistrationResult(user_id=input.user_id, tenant_id=input.tenant_id)

    def _check_tenant(self, tenant_id: str) -> None:
        """Access to a tenant is granted only by a registration started in that tenant."""
        context = current_context()
        if context is None or context.tenant_id != tenant_id:
            raise final(ErrorKind.TENANT_ISOLATION, "tenant not found")

    async def _verification(
        self, input: UserRegistrationInput, issued: TokenIssued, deadline: datetime
    ) -> TokenState:
        while True:
            if not await wait_until(deadline, self._signals):
                raise final(ErrorKind.VALIDATION, "registration expired")
            signal = self._signals.pop(0)
            if signal.token_id != issued.token_id:
                self._log.record(EventKind.MESSAGE, "verify_email", "ignored a foreign token")
                continue
            try:
                return await call(
                    AuthActivity.VERIFY_EMAIL_TOKEN,
                    VerifyTokenInput(user_id=input.user_id, token_id=signal.token_id),
                    TokenState,
                )
            except ActivityError as error:
                if not refused(error):
                    raise
                self._log.record(EventKind.MESSAGE, "verify_email", "the link was refused")


# Pinned: waits hours for the reset; each run ends on the build it began on.
@workflow.defn(name=WorkflowType.PASSWORD_RESET.value, versioning_behavior=PINNED)
class PasswordResetWorkflow:
    """Reset email with a single-use link -> wait for ``reset_password`` (sent by the confirm
    endpoint after it stored the new password hash) -> revoke every session of the user.

    Every reset request runs one, so that its answer (an operation id) is the same whether the
    address has an account or not; without an active account (no ``user_id``) it ends at once,
    sending nothing."""

    def __init__(self) -> None:
        self._log = ProgressLog()
        self._signals: list[ResetPasswordSignal] = []

    @workflow.signal(name=SignalName.RESET_PASSWORD.value)
    def reset_password(self, signal: ResetPasswordSignal) -> None:
        self._signals.append(signal)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: PasswordResetInput) -> PasswordResetResult:
        self._log.set_total(3)
        self._log.record(EventKind.STARTED)
        if input.user_id is None:
            # No command on this path: histories of the other one replay unchanged.
            return PasswordResetResult(
                user_id=None, sessions_revoked=0, status=PasswordResetStatus.NO_ACCOUNT
            )
        user_id = input.user_id
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        saga = Saga(self._log)
        try:
            issued = await saga.step(
                "send_reset_email",
                lambda: call(
                    AuthActivity.SEND_PASSWORD_RESET_EMAIL,
                    SendTokenEmailInput(
                        user_id=user_id,
                        workflow_id=workflow.info().workflow_id,
                        expires_at=deadline,
                    ),
                    TokenIssued,
                ),
            )
            token = TokenInput(token_id=issued.token_id)
            saga.add_compensation(
                "send_reset_email", lambda: undo(AuthActivity.EXPIRE_TOKEN, token, TokenState)
            )
            await saga.step("await_reset", lambda: self._reset(user_id, issued, deadline))
            revoked = await saga.step(
                "revoke_sessions",
                lambda: call(
                    AuthActivity.REVOKE_USER_SESSIONS,
                    RevokeUserSessionsInput(user_id=user_id),
                    RevokedSessions,
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        return PasswordResetResult(user_id=user_id, sessions_revoked=revoked.count)

    async def _reset(self, user_id: str, issued: TokenIssued, deadline: datetime) -> TokenState:
        while True:
            if not await wait_until(deadline, self._signals):
                # A reset confirmed right at the deadline still counts: the token says.
                state = await call(
                    AuthActivity.EXPIRE_TOKEN, TokenInput(token_id=issued.token_id), TokenState
                )
                if state.used:
                    return state
                raise final(ErrorKind.VALIDATION, "password reset expired")
            signal = self._signals.pop(0)
            if signal.token_id != issued.token_id:
                self._log.record(EventKind.MESSAGE, "await_reset", "ignored a foreign token")
                continue
            try:
                return await call(
                    AuthActivity.CHECK_PASSWORD_RESET,
                    VerifyTokenInput(user_id=user_id, token_id=signal.token_id),
                    TokenState,
                )
            except ActivityError as error:
                if not refused(error):
                    raise
                self._log.record(EventKind.MESSAGE, "await_reset", "the reset was refused")


# Pinned: waits for a person's code; each run ends on the build it began on.
@workflow.defn(name=WorkflowType.MFA_SETUP.value, versioning_behavior=PINNED)
class MfaSetupWorkflow:
    """Wait for ``confirm_mfa`` with a valid TOTP code (each attempt's outcome is answered by
    the ``mfa_attempt`` query; after ``max_attempts`` wrong codes or at the deadline the setup
    fails and its secret is discarded) -> enable MFA with the recovery codes' hashes."""

    def __init__(self) -> None:
        self._log = ProgressLog()
        self._queue: list[ConfirmMfaSignal] = []
        self._attempts: dict[str, MfaAttempt] = {}
        self._left = 0

    @workflow.signal(name=SignalName.CONFIRM_MFA.value)
    def confirm_mfa(self, signal: ConfirmMfaSignal) -> None:
        if signal.attempt_id in self._attempts:
            return  # the same attempt delivered twice
        self._attempts[signal.attempt_id] = MfaAttempt(
            attempt_id=signal.attempt_id, status=MfaAttemptStatus.PENDING, attempts_left=self._left
        )
        self._queue.append(signal)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.query(name=QueryName.MFA_ATTEMPT.value)
    def attempt(self, request: MfaAttemptRequest) -> MfaAttempt:
        return self._attempts.get(request.attempt_id) or MfaAttempt(
            attempt_id=request.attempt_id,
            status=MfaAttemptStatus.PENDING,
            attempts_left=self._left,
        )

    @workflow.run
    async def run(self, input: MfaSetupInput) -> MfaSetupResult:
        self._log.set_total(2)
        self._log.record(EventKind.STARTED)
        self._left = input.max_attempts
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        secret = MfaSecretInput(user_id=input.user_id, secret_id=input.secret_id)
        saga = Saga(self._log)
        # The setup endpoint stored the (encrypted) secret before starting the workflow.
        saga.add_compensation(
            "create_mfa_secret",
            lambda: undo(AuthActivity.DISCARD_MFA_SECRET, secret, UserChange),
        )
        try:
            accepted = await saga.step("confirm_code", lambda: self._confirmation(input, deadline))
            result = await saga.step(
                "enable_mfa",
                lambda: call(
                    AuthActivity.ENABLE_MFA,
                    EnableMfaInput(
                        user_id=input.user_id,
                        secret_id=input.secret_id,
                        recovery_code_hashes=accepted.recovery_code_hashes,
                    ),
                    MfaSetupResult,
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        self._attempts[accepted.attempt_id] = MfaAttempt(
            attempt_id=accepted.attempt_id,
            status=MfaAttemptStatus.ACCEPTED,
            attempts_left=self._left,
        )
        return result

    async def _confirmation(self, input: MfaSetupInput, deadline: datetime) -> ConfirmMfaSignal:
        while True:
            if not await wait_until(deadline, self._queue):
                raise final(ErrorKind.VALIDATION, "MFA setup expired")
            signal = self._queue.pop(0)
            check = await call(
                AuthActivity.VERIFY_MFA_CODE,
                VerifyMfaCodeInput(
                    user_id=input.user_id, secret_id=input.secret_id, code=signal.code
                ),
                MfaCodeCheck,
            )
            if check.valid:
                return signal
            self._left -= 1
            self._attempts[signal.attempt_id] = MfaAttempt(
                attempt_id=signal.attempt_id,
                status=MfaAttemptStatus.REJECTED,
                attempts_left=self._left,
            )
            self._log.record(
                EventKind.MESSAGE, "confirm_code", "invalid code", attempts_left=self._left
            )
            if self._left <= 0:
                raise final(ErrorKind.VALIDATION, "too many invalid codes")


WORKFLOWS: list[type] = [UserRegistrationWorkflow, PasswordResetWorkflow, MfaSetupWorkflow]
