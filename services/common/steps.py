"""The workflow-step kernel: the one way every workflow of every service runs its steps.

- ``Steps.call`` runs a forward activity (one that changes state) from a typed
  :class:`~contracts.activities.ActivityRef`; ``Steps.read`` a read; ``Steps.undo`` a
  compensation. Nothing else in a workflow starts an activity.
- ``Steps.step`` runs one named step with progress events and registers its compensation,
  which is given the step's result; ``Steps.compensate`` runs the registered ones newest
  first, shielded from the cancel; ``Steps.failure`` is what the workflow raises then.
- ``caller`` / ``require_roles`` give the identity the workflow was started with;
  ``ProgressWorkflow`` is the base that answers the ``progress`` query.

Cancellation is correct by construction. A forward activity in flight when the cancel
arrives is not abandoned (Temporal's default would let it commit after the workflow has
compensated and ended): the kernel asks it to stop, waits for its real end
(``WAIT_CANCELLATION_COMPLETED``) and, if it completed, hands its result to the step as
usual, so the step's compensation is registered and runs with the others. A result that
reaches the workflow together with the cancel is kept: the handle is not asked to stop then
(the SDK would end it cancelled and drop the result); should the SDK drop one all the same,
the outcome counts as unknown and is settled by running the idempotent activity again.
Once cancelled, no new forward activity starts; the cancel is re-raised when the step ends.

Compensations are idempotent and scoped to what the operation made (ids derived from the
workflow id), so running one again after a crash, or for a step whose effect was already
undone, changes nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.activities import ActivityRef
    from contracts.context import RequestContext, compensating, current_context, use_context
    from contracts.errors import ErrorKind, error_kind
    from contracts.names import QueryName
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY, READ_RETRY

I = TypeVar("I", bound=BaseModel)  # noqa: E741
R = TypeVar("R")
T = TypeVar("T")


# Presets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallOptions:
    """How long one attempt may take and how attempts are retried."""

    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None

    def with_timeout(self, seconds: float) -> CallOptions:
        return CallOptions(timedelta(seconds=seconds), self.retry, self.heartbeat)


# The patch that marks runs started on this kernel (older ones abandon a running forward
# activity on a cancel, as they did).
KERNEL_PATCH = "steps-kernel"
# The patch that settles a forward call whose result the SDK dropped for arriving with the
# cancel (before it, the step counted as failed and was not compensated).
SETTLE_DROPPED_PATCH = "steps-settle-dropped-result"

FORWARD = CallOptions(timedelta(seconds=30), DEFAULT_RETRY)
# A step past the point of no return that failed is tried again after this, then doubling.
RETRY_AFTER_PIVOT = timedelta(seconds=1)
MAX_RETRY_AFTER_PIVOT = timedelta(minutes=10)
READ = CallOptions(timedelta(seconds=5), READ_RETRY)
COMPENSATION = CallOptions(timedelta(seconds=30), COMPENSATION_RETRY)


# Caller context -----------------------------------------------------------------------------


def final(kind: ErrorKind, message: str) -> ApplicationError:
    """A workflow failure that is not retried (a ServiceError would fail the task instead)."""
    return ApplicationError(message, type=kind.value, non_retryable=True)


def caller(tenant_id: str | None = None) -> RequestContext:
    """The identity the workflow was started with; a tenant named in the input must be the
    caller's (another tenant's is "not found")."""
    context = current_context()
    if context is None:
        raise final(ErrorKind.AUTHENTICATION, "no caller identity")
    if tenant_id is not None and tenant_id != context.tenant_id:
        workflow.logger.warning(
            "security.tenant_isolation_violation: workflow input names another tenant"
        )
        raise final(ErrorKind.TENANT_ISOLATION, "tenant not found")
    return context


def require_roles(context: RequestContext, roles: Iterable[str], what: str) -> None:
    wanted = frozenset(roles)
    if not wanted.intersection(context.roles):
        needed = " or ".join(sorted(wanted))
        raise final(ErrorKind.AUTHORIZATION, f"the {needed} role is needed to {what}")


# Progress -----------------------------------------------------------------------------------


class ProgressWorkflow:
    """Base of every workflow class: its progress log, answered by the ``progress`` query."""

    _progress: ProgressLog

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)


# Steps --------------------------------------------------------------------------------------


Compensation = Callable[[], Awaitable[object]]


class Steps:
    """The steps of one workflow run, its compensations and its pending cancellation."""

    def __init__(self, progress: ProgressLog, *, forward: CallOptions = FORWARD) -> None:
        self.progress = progress
        self.forward = forward
        self._compensations: list[tuple[str, Compensation]] = []
        self.compensated: list[str] = []
        self._cancelled: asyncio.CancelledError | None = None
        self._failure: ActivityError | None = None
        self._past_pivot = False
        # Runs started before this kernel let a running forward activity go on a cancel;
        # they keep doing so, so that they replay (new runs record the patch marker).
        self._abandon_on_cancel = not workflow.patched(KERNEL_PATCH)

    # Activities ---------------------------------------------------------------------------

    async def call(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        *,
        context: RequestContext | None = None,
        options: CallOptions | None = None,
        local: bool = False,
    ) -> R:
        """A forward activity, awaited to its real end even when the workflow is cancelled
        meanwhile (its result is returned, and the cancel re-raised when the step ends).
        ``context``: act with that identity (a tenant the workflow has established the
        caller's right to). ``local``: a local activity (its input is not recorded in
        history)."""
        self.raise_if_cancelled()
        options = options or self.forward
        if self._abandon_on_cancel:
            # A run from before the kernel: replayed as it ran (see KERNEL_PATCH).
            return await self._start(
                ref, arg, context, options, ActivityCancellationType.TRY_CANCEL, local=local
            )
        handle = self._start_forward(ref, arg, context, options, local)
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError as cancelled:
            if not self._past_pivot:
                self._cancelled = cancelled
                if not _result_arrived(handle):
                    handle.cancel()
            # Past the point of no return the operation completes: the cancel is dropped.
            try:
                late: R = await handle
            except ActivityError as error:
                if self._past_pivot:
                    if error_kind_of(error) is ErrorKind.VALIDATION:
                        raise
                    return await self._until_done(ref, arg, context, options, local, error)
                if not _timed_out(error):
                    raise cancelled from None
                return await self._settle(ref, arg, context, options, local)
            except asyncio.CancelledError:
                # The SDK ends a handle cancelled when its result arrived in the same
                # activation as the cancel: the activity ran to its end, its result dropped.
                if not handle.cancelled() or not workflow.patched(SETTLE_DROPPED_PATCH):
                    raise cancelled from None
                return await self._settle(ref, arg, context, options, local)
            except BaseException:
                raise cancelled from None
            return late
        except ActivityError as error:
            if self._past_pivot and error_kind_of(error) is not ErrorKind.VALIDATION:
                return await self._until_done(ref, arg, context, options, local, error)
            if not _timed_out(error):
                raise
            # Failed all the same, once the step knows what to undo.
            self._failure = error
            return await self._settle(ref, arg, context, options, local)

    async def _until_done(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        context: RequestContext | None,
        options: CallOptions,
        local: bool,
        error: ActivityError,
    ) -> R:
        """Past the point of no return nothing is undone, so a step that fails is tried
        again, after a pause, until it is done (only bad input stops it): the operation is
        stuck, visibly, rather than half done."""
        delay = RETRY_AFTER_PIVOT
        while True:
            self.progress.record(
                EventKind.MESSAGE, ref.name, "retrying", error=error_kind_of(error).value
            )
            await _regardless(asyncio.ensure_future(workflow.sleep(delay)))
            delay = min(delay * 2, MAX_RETRY_AFTER_PIVOT)
            handle = self._start_forward(ref, arg, context, options, local)
            try:
                return await _regardless(handle)
            except ActivityError as again:
                if error_kind_of(again) is ErrorKind.VALIDATION:
                    raise
                error = again

    async def _settle(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        context: RequestContext | None,
        options: CallOptions,
        local: bool,
    ) -> R:
        """The outcome of a forward call whose last attempt timed out is unknown: that attempt
        may still commit. Forward activities are idempotent, so running it again until it
        ends gives the outcome, and the step is compensated with it like any other."""
        retried = CallOptions(options.start_to_close, COMPENSATION.retry, options.heartbeat)
        handle = self._start_forward(ref, arg, context, retried, local)
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError as cancelled:
            if not self._past_pivot:
                self._cancelled = self._cancelled or cancelled
            return await _regardless(handle)

    async def read(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        *,
        context: RequestContext | None = None,
        options: CallOptions = READ,
        local: bool = False,
    ) -> R:
        """An activity that changes nothing: abandoned at once on a cancel. ``local``: a
        local activity (for quick reads in the worker's own service)."""
        return await self._start(
            ref, arg, context, options, ActivityCancellationType.TRY_CANCEL, local=local
        )

    async def undo(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        *,
        context: RequestContext | None = None,
        options: CallOptions = COMPENSATION,
    ) -> R:
        """A compensation's activity: retried until it is done (only bad input stops it).
        It runs marked as a compensation, so the store fences what it undoes against a late
        attempt of the operation's own forward step (services/common/before.py)."""
        with compensating():  # read when the activity is scheduled, below
            handle = self._start(
                ref, arg, context, options, ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            )
        return await handle

    def _start_forward(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        context: RequestContext | None,
        options: CallOptions,
        local: bool,
    ) -> workflow.ActivityHandle[R]:
        """A forward activity that a cancel asks to stop and then waits for to its real end."""
        return self._start(
            ref,
            arg,
            context,
            options,
            ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            local=local,
        )

    def _start(
        self,
        ref: ActivityRef[I, R],
        arg: I,
        context: RequestContext | None,
        options: CallOptions,
        cancellation: ActivityCancellationType,
        *,
        local: bool = False,
    ) -> workflow.ActivityHandle[R]:
        with use_context(context or current_context()):
            if local:
                return workflow.start_local_activity(
                    ref.name,
                    arg,
                    result_type=ref.result_type,
                    start_to_close_timeout=options.start_to_close,
                    retry_policy=options.retry,
                    cancellation_type=cancellation,
                )
            return workflow.start_activity(
                ref.name,
                arg,
                task_queue=ref.task_queue.value,
                result_type=ref.result_type,
                start_to_close_timeout=options.start_to_close,
                heartbeat_timeout=options.heartbeat,
                retry_policy=options.retry,
                cancellation_type=cancellation,
            )

    # Steps --------------------------------------------------------------------------------

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        compensation: Callable[[T], Awaitable[object]] | None = None,
        *,
        pivot: bool = False,
    ) -> T:
        """Runs one step with progress events. Its compensation, given the step's result, is
        registered once the step completed, a step that completed after the cancel included;
        then a pending cancel is raised.

        ``pivot``: the point of no return (an email sent cannot be unsent). Once a pivot step
        completed, the operation completes: a cancel that arrived meanwhile, or later, is
        dropped, and the steps after it run to their end."""
        self.progress.record(EventKind.STEP_STARTED, name)
        try:
            result = await action()
        except (Exception, asyncio.CancelledError):
            # Not BaseException: a coroutine closed on eviction records nothing.
            self.progress.record(EventKind.STEP_FAILED, name)
            raise
        if compensation is not None:
            self._compensations.append((name, _bound(compensation, result)))
        if self._failure is not None:  # settled after a timeout: it failed, and is undone
            self.progress.record(EventKind.STEP_FAILED, name)
            self.raise_if_cancelled()
        self.progress.record(EventKind.STEP_COMPLETED, name)
        if pivot:
            self.irrevocable()
        self.raise_if_cancelled()
        return result

    def irrevocable(self) -> None:
        """From here on the operation completes: what happened cannot be taken back (an
        email sent, a password a person changed). A pending or later cancel is dropped."""
        self._past_pivot = True
        self._cancelled = None

    def raise_if_cancelled(self) -> None:
        """For loops that record their own progress around ``call``: a cancel that arrived
        with a call's result (or the timeout of a call that was settled) is raised here,
        before the loop goes on."""
        if self._cancelled is not None:
            raise self._cancelled
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def add_compensation(self, name: str, compensation: Compensation) -> None:
        """For what existed before the workflow (made by the request that started it)."""
        self._compensations.append((name, compensation))

    async def compensate(self) -> list[str]:
        """Runs the registered compensations newest first, each shielded from a cancel; one
        failing for good does not stop the rest (it is logged and reported)."""
        while self._compensations:
            name, compensation = self._compensations.pop()
            self.progress.record(EventKind.COMPENSATION_STARTED, name)
            try:
                await asyncio.shield(asyncio.ensure_future(compensation()))
            except Exception:
                workflow.logger.exception("compensation %s failed", name)
                self.progress.record(EventKind.COMPENSATION_FAILED, name)
                continue
            self.compensated.append(name)
            self.progress.record(EventKind.COMPENSATION_COMPLETED, name)
        return self.compensated

    def failure(self, error: BaseException) -> BaseException:
        """What the workflow raises after compensating (see :func:`failure`)."""
        return failure(error, self.compensated)


def failure(error: BaseException, compensated: list[str]) -> BaseException:
    """A cancellation (the operation ends CANCELED; the compensations that ran are in its
    progress log), or an ApplicationError with the cause's kind, a safe message and the
    compensations that ran.

    Always a new exception: ``raise steps.failure(error) from error`` must not rewrite the
    original's cause (an ActivityError is a cancellation only through its cause)."""
    if is_cancelled_exception(error):
        return CancelledError("the operation was cancelled")
    cause = root_cause(error)
    if isinstance(cause, ApplicationError):
        kind = error_kind(cause.type)
        message = cause.message if kind is not ErrorKind.INTERNAL else "internal error"
    else:
        kind, message = ErrorKind.INTERNAL, "internal error"
    return ApplicationError(
        message, {"compensations": list(compensated)}, type=kind.value, non_retryable=True
    )


async def _regardless(task: asyncio.Future[T]) -> T:
    """Awaits ``task`` to its end, a cancel of the workflow meanwhile notwithstanding (the
    caller has taken note of it, or is past the point of no return)."""
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            continue


def _result_arrived(handle: workflow.ActivityHandle[R]) -> bool:
    """Whether the activity's result came in the same activation as the cancel: the SDK
    would drop it if the handle were cancelled now (its handle still runs to hand it over).
    The SDK has no public way to ask; without its attribute the dropped result is settled."""
    result: asyncio.Future[object] | None = getattr(handle, "_result_fut", None)
    return result is not None and result.done()


def _bound(compensation: Callable[[T], Awaitable[object]], result: T) -> Compensation:
    def run() -> Awaitable[object]:
        return compensation(result)

    return run


def error_kind_of(error: BaseException) -> ErrorKind:
    cause = root_cause(error)
    return error_kind(cause.type if isinstance(cause, ApplicationError) else None)


def _timed_out(error: ActivityError) -> bool:
    return isinstance(error.cause, ActivityTimeout)


def root_cause(error: BaseException) -> BaseException:
    """Looks through activity and child-workflow wrappers to what actually went wrong."""
    while isinstance(error, ActivityError | ChildWorkflowError) and error.cause is not None:
        error = error.cause
    return error
