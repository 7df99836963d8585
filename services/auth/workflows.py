"""The auth service's workflows: user_registration, password_reset and mfa_setup.

Each waits for a person (a link clicked, a code typed) with a deadline, reports progress through
the ``progress`` query and undoes its steps on failure, expiry or cancellation (a saga). Secrets
never enter history: inputs, signals and results carry ids and hashes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.auth import (
        AuthActivities,
        ConfirmMfaSignal,
        EnableMfaInput,
        GrantTenantAccessInput,
        MfaAttempt,
        MfaAttemptRequest,
        MfaAttemptStatus,
        MfaSecretInput,
        MfaSetupInput,
        MfaSetupResult,
        PasswordResetInput,
        PasswordResetResult,
        PasswordResetStatus,
        ResetPasswordSignal,
        RevokeTenantAccessInput,
        RevokeUserSessionsInput,
        SendTokenEmailInput,
        TokenInput,
        TokenIssued,
        TokenState,
        UserInput,
        UserRegistrationInput,
        UserRegistrationResult,
        VerifyEmailSignal,
        VerifyMfaCodeInput,
        VerifyTokenInput,
    )
    from contracts.errors import ErrorKind, error_kind
    from contracts.names import QueryName, SignalName, WorkflowType
    from contracts.progress import EventKind
    from services.common.progress import ProgressLog
    from services.common.steps import FORWARD, ProgressWorkflow, Steps, caller, final, root_cause

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED


def refused(error: ActivityError) -> bool:
    """The activity refused the input (a bad link or code): the workflow keeps waiting."""
    cause = root_cause(error)
    return isinstance(cause, ApplicationError) and error_kind(cause.type) is ErrorKind.VALIDATION


# Runs from before it let a cancel end a reset whose link had just been used (the password
# changed, the sessions survived).
RESET_CANCEL_PATCH = "password-reset-cancel-after-reset"


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
class UserRegistrationWorkflow(ProgressWorkflow):
    """Verification email -> wait for the link (``verify_email`` signal) -> activate -> optional
    tenant grant. On expiry the pending user and its tokens are deleted and the workflow fails
    with a ValidationError "registration expired"."""

    def __init__(self) -> None:
        self._progress = ProgressLog()
        self._signals: list[VerifyEmailSignal] = []

    @workflow.signal(name=SignalName.VERIFY_EMAIL.value)
    def verify_email(self, signal: VerifyEmailSignal) -> None:
        self._signals.append(signal)

    @workflow.run
    async def run(self, input: UserRegistrationInput) -> UserRegistrationResult:
        self._progress.set_total(4 if input.tenant_id else 3)
        self._progress.record(EventKind.STARTED)
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        user = UserInput(user_id=input.user_id)
        steps = Steps(self._progress)
        # The register endpoint wrote the pending user before starting the workflow.
        steps.add_compensation(
            "create_pending_user",
            lambda: steps.undo(AuthActivities.DISCARD_PENDING_USER, user),
        )
        try:
            if input.tenant_id is not None:
                # Access to a tenant is granted only by a registration started in that tenant.
                caller(input.tenant_id)
            issued = await steps.step(
                "send_verification_email",
                lambda: steps.call(
                    AuthActivities.SEND_VERIFICATION_EMAIL,
                    SendTokenEmailInput(
                        user_id=input.user_id,
                        workflow_id=workflow.info().workflow_id,
                        expires_at=deadline,
                    ),
                ),
            )
            await steps.step(
                "verify_email", lambda: self._verification(steps, input, issued, deadline)
            )
            await steps.step(
                "activate_user",
                lambda: steps.call(AuthActivities.ACTIVATE_USER, user),
                lambda _: steps.undo(AuthActivities.REVERT_USER_ACTIVATION, user),
            )
            if input.tenant_id is not None:
                tenant_id = input.tenant_id
                await steps.step(
                    "grant_tenant_access",
                    lambda: steps.call(
                        AuthActivities.GRANT_TENANT_ACCESS,
                        GrantTenantAccessInput(
                            user_id=input.user_id, tenant_id=tenant_id, roles=input.roles
                        ),
                    ),
                    lambda _: steps.undo(
                        AuthActivities.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=input.user_id, tenant_id=tenant_id),
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            # Not BaseException: a workflow evicted from the worker cache must not compensate.
            await steps.compensate()
            raise steps.failure(error) from None
        return UserRegistrationResult(user_id=input.user_id, tenant_id=input.tenant_id)

    async def _verification(
        self, steps: Steps, input: UserRegistrationInput, issued: TokenIssued, deadline: datetime
    ) -> TokenState:
        while True:
            if not await wait_until(deadline, self._signals):
                raise final(ErrorKind.VALIDATION, "registration expired")
            signal = self._signals.pop(0)
            if signal.token_id != issued.token_id:
                self._progress.record(EventKind.MESSAGE, "verify_email", "ignored a foreign token")
                continue
            try:
                # Uses the token up. After a cancel a refusal re-raises the cancel (the kernel),
                # so this loop never waits on past it.
                return await steps.call(
                    AuthActivities.VERIFY_EMAIL_TOKEN,
                    VerifyTokenInput(user_id=input.user_id, token_id=signal.token_id),
                )
            except ActivityError as error:
                if not refused(error):
                    raise
                self._progress.record(EventKind.MESSAGE, "verify_email", "the link was refused")


# Pinned: waits hours for the reset; each run ends on the build it began on.
@workflow.defn(name=WorkflowType.PASSWORD_RESET.value, versioning_behavior=PINNED)
class PasswordResetWorkflow(ProgressWorkflow):
    """Reset email with a single-use link -> wait for ``reset_password`` (sent by the confirm
    endpoint after it stored the new password hash) -> revoke every session of the user.

    Every reset request runs one, so that its answer (an operation id) is the same whether the
    address has an account or not; without an active account (no ``user_id``) it ends at once,
    sending nothing."""

    def __init__(self) -> None:
        self._progress = ProgressLog()
        self._signals: list[ResetPasswordSignal] = []

    @workflow.signal(name=SignalName.RESET_PASSWORD.value)
    def reset_password(self, signal: ResetPasswordSignal) -> None:
        self._signals.append(signal)

    @workflow.run
    async def run(self, input: PasswordResetInput) -> PasswordResetResult:
        self._progress.set_total(3)
        self._progress.record(EventKind.STARTED)
        if input.user_id is None:
            # No command on this path: histories of the other one replay unchanged.
            return PasswordResetResult(
                user_id=None, sessions_revoked=0, status=PasswordResetStatus.NO_ACCOUNT
            )
        user_id = input.user_id
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        steps = Steps(self._progress)
        sent: list[TokenIssued] = []

        async def send() -> TokenIssued:
            issued = await steps.call(
                AuthActivities.SEND_PASSWORD_RESET_EMAIL,
                SendTokenEmailInput(
                    user_id=user_id, workflow_id=workflow.info().workflow_id, expires_at=deadline
                ),
            )
            sent.append(issued)
            return issued

        try:
            try:
                issued = await steps.step(
                    "send_reset_email",
                    send,
                    lambda issued: steps.undo(
                        AuthActivities.EXPIRE_TOKEN, TokenInput(token_id=issued.token_id)
                    ),
                )
                await steps.step(
                    "await_reset", lambda: self._reset(steps, user_id, issued, deadline)
                )
            except asyncio.CancelledError:
                if not sent or not await self._link_was_used(steps, sent[0]):
                    raise
            revoked = await steps.step(
                "revoke_sessions",
                lambda: steps.call(
                    AuthActivities.REVOKE_USER_SESSIONS, RevokeUserSessionsInput(user_id=user_id)
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from None
        return PasswordResetResult(user_id=user_id, sessions_revoked=revoked.count)

    async def _link_was_used(self, steps: Steps, issued: TokenIssued) -> bool:
        """On a cancel once the email went out: the person may have reset the password
        meanwhile (the confirmation on its way, or in this very task). Ending the link's
        token says, once and for all; if it was used, the reset has happened and completes."""
        if not workflow.patched(RESET_CANCEL_PATCH):
            return False
        state = await steps.undo(AuthActivities.EXPIRE_TOKEN, TokenInput(token_id=issued.token_id))
        if not state.used:
            return False
        steps.irrevocable()
        self._progress.record(EventKind.MESSAGE, "await_reset", "reset with the cancel")
        return True

    async def _reset(
        self, steps: Steps, user_id: str, issued: TokenIssued, deadline: datetime
    ) -> TokenState:
        while True:
            if not await wait_until(deadline, self._signals):
                # A reset confirmed right at the deadline still counts: the token says.
                state = await steps.call(
                    AuthActivities.EXPIRE_TOKEN, TokenInput(token_id=issued.token_id)
                )
                if state.used:
                    steps.irrevocable()
                    return state
                steps.raise_if_cancelled()
                raise final(ErrorKind.VALIDATION, "password reset expired")
            signal = self._signals.pop(0)
            if signal.token_id != issued.token_id:
                self._progress.record(EventKind.MESSAGE, "await_reset", "ignored a foreign token")
                continue
            # The confirm endpoint changed the password before it signalled: the reset has
            # happened, and the sessions must end, whatever a cancel says.
            steps.irrevocable()
            try:
                return await steps.call(
                    AuthActivities.CHECK_PASSWORD_RESET,
                    VerifyTokenInput(user_id=user_id, token_id=signal.token_id),
                )
            except ActivityError as error:
                if not refused(error):
                    raise
                self._progress.record(EventKind.MESSAGE, "await_reset", "the reset was refused")


# Pinned: waits for a person's code; each run ends on the build it began on.
@workflow.defn(name=WorkflowType.MFA_SETUP.value, versioning_behavior=PINNED)
class MfaSetupWorkflow(ProgressWorkflow):
    """Wait for ``confirm_mfa`` with a valid TOTP code (each attempt's outcome is answered by
    the ``mfa_attempt`` query; after ``max_attempts`` wrong codes or at the deadline the setup
    fails and its secret is discarded) -> enable MFA with the recovery codes' hashes."""

    def __init__(self) -> None:
        self._progress = ProgressLog()
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

    @workflow.query(name=QueryName.MFA_ATTEMPT.value)
    def attempt(self, request: MfaAttemptRequest) -> MfaAttempt:
        return self._attempts.get(request.attempt_id) or MfaAttempt(
            attempt_id=request.attempt_id,
            status=MfaAttemptStatus.PENDING,
            attempts_left=self._left,
        )

    @workflow.run
    async def run(self, input: MfaSetupInput) -> MfaSetupResult:
        self._progress.set_total(2)
        self._progress.record(EventKind.STARTED)
        self._left = input.max_attempts
        deadline = workflow.now() + timedelta(seconds=input.expires_in_seconds)
        secret = MfaSecretInput(user_id=input.user_id, secret_id=input.secret_id)
        steps = Steps(self._progress)
        # The setup endpoint stored the (encrypted) secret before starting the workflow.
        steps.add_compensation(
            "create_mfa_secret",
            lambda: steps.undo(AuthActivities.DISCARD_MFA_SECRET, secret),
        )
        try:
            accepted = await steps.step(
                "confirm_code", lambda: self._confirmation(steps, input, deadline)
            )
            result = await steps.step(
                "enable_mfa",
                lambda: steps.call(
                    AuthActivities.ENABLE_MFA,
                    EnableMfaInput(
                        user_id=input.user_id,
                        secret_id=input.secret_id,
                        recovery_code_hashes=accepted.recovery_code_hashes,
                    ),
                ),
                # Once MFA is on (the person holds its recovery codes), the setup stands: a
                # cancel that comes with it is dropped rather than leaving MFA on with its
                # secret discarded.
                pivot=True,
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from None
        self._attempts[accepted.attempt_id] = MfaAttempt(
            attempt_id=accepted.attempt_id,
            status=MfaAttemptStatus.ACCEPTED,
            attempts_left=self._left,
        )
        return result

    async def _confirmation(
        self, steps: Steps, input: MfaSetupInput, deadline: datetime
    ) -> ConfirmMfaSignal:
        while True:
            if not await wait_until(deadline, self._queue):
                raise final(ErrorKind.VALIDATION, "MFA setup expired")
            signal = self._queue.pop(0)
            # A read (the activity is side-effect free): a cancel ends it at once instead of a
            # late "invalid" answer letting this loop wait on past the cancel.
            check = await steps.read(
                AuthActivities.VERIFY_MFA_CODE,
                VerifyMfaCodeInput(
                    user_id=input.user_id, secret_id=input.secret_id, code=signal.code
                ),
                options=FORWARD,
            )
            if check.valid:
                return signal
            self._left -= 1
            self._attempts[signal.attempt_id] = MfaAttempt(
                attempt_id=signal.attempt_id,
                status=MfaAttemptStatus.REJECTED,
                attempts_left=self._left,
            )
            self._progress.record(
                EventKind.MESSAGE, "confirm_code", "invalid code", attempts_left=self._left
            )
            if self._left <= 0:
                raise final(ErrorKind.VALIDATION, "too many invalid codes")


WORKFLOWS: list[type] = [UserRegistrationWorkflow, PasswordResetWorkflow, MfaSetupWorkflow]
