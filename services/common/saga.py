"""Multi-step workflows as sagas: each completed step registers its compensation; on failure
or cancellation the compensations run in reverse, shielded from the cancel, and the failure
names the ones that ran (clients see them in ``WorkflowFailed.compensations``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    is_cancelled_exception,
)

from contracts.errors import ErrorKind, error_kind
from contracts.progress import EventKind
from services.common.progress import ProgressLog

T = TypeVar("T")
Compensation = Callable[[], Awaitable[object]]


class Saga:
    def __init__(self, progress: ProgressLog) -> None:
        self.progress = progress
        self._compensations: list[tuple[str, Compensation]] = []
        self.compensated: list[str] = []

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        compensation: Compensation | None = None,
    ) -> T:
        """Runs one step with progress events; its compensation counts only once it is done."""
        self.progress.record(EventKind.STEP_STARTED, name)
        try:
            result = await action()
        except BaseException:
            self.progress.record(EventKind.STEP_FAILED, name)
            raise
        if compensation is not None:
            self._compensations.append((name, compensation))
        self.progress.record(EventKind.STEP_COMPLETED, name)
        return result

    def add_compensation(self, name: str, compensation: Compensation) -> None:
        self._compensations.append((name, compensation))

    async def compensate(self) -> list[str]:
        """Runs the registered compensations newest first; one failing does not stop the rest."""
        while self._compensations:
            name, compensation = self._compensations.pop()
            self.progress.record(EventKind.COMPENSATION_STARTED, name)
            try:
                # Shielded: a cancel delivered during the rollback must not cut it short.
                await asyncio.shield(asyncio.ensure_future(compensation()))
            except Exception:
                workflow.logger.exception("compensation %s failed", name)
                self.progress.record(EventKind.COMPENSATION_FAILED, name)
                continue
            self.compensated.append(name)
            self.progress.record(EventKind.COMPENSATION_COMPLETED, name)
        return self.compensated

    def failure(self, error: BaseException) -> BaseException:
        """What the workflow raises after compensating: a cancellation (so the operation ends
        CANCELED), or an ApplicationError with the cause's kind and safe message and the
        compensations that ran.

        Always a new exception: ``raise saga.failure(error) from error`` must not rewrite the
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
            message,
            {"compensations": list(self.compensated)},
            type=kind.value,
            non_retryable=True,
        )


def root_cause(error: BaseException) -> BaseException:
    """Looks through activity and child-workflow wrappers to what actually went wrong."""
    while isinstance(error, ActivityError | ChildWorkflowError) and error.cause is not None:
        error = error.cause
    return error
