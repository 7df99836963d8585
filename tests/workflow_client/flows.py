"""Small workflows the workflow_client tests drive on the real dev server.

They follow the product's conventions (progress query, compensations recorded in the failure)
so the client is tested against what real workflows do. No pytest imports: the workflow
sandbox re-imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

from contracts.context import current_context
from contracts.progress import (
    EventKind,
    Progress,
    ProgressEvent,
    ProgressReport,
    ProgressRequest,
)

# Switched by tests to make a step fail (activities run in the test process).
FAILING_STEPS: set[str] = set()
SIDE_EFFECTS: list[str] = []


class StepsInput(BaseModel):
    label: str
    steps: int = 3
    fail_at: int | None = None
    step_delay_ms: int = 0
    secret_note: str = ""


class StepsResult(BaseModel):
    label: str
    done: list[str]


class WaitInput(BaseModel):
    seconds: float


class WhoAmI(BaseModel):
    where: str
    user_id: str | None
    tenant_id: str | None
    roles: list[str]
    correlation_id: str | None


@activity.defn(name="demo_do_step")
async def do_step(label: str, step: str, delay_ms: int) -> str:
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    if f"{label}:{step}" in FAILING_STEPS:
        raise ApplicationError(
            f"step {step} failed", type="ExternalServiceError", non_retryable=True
        )
    SIDE_EFFECTS.append(f"do:{label}:{step}")
    return step


@activity.defn(name="demo_undo_step")
async def undo_step(label: str, step: str) -> None:
    SIDE_EFFECTS.append(f"undo:{label}:{step}")


@activity.defn(name="demo_whoami")
async def whoami(where: str) -> WhoAmI:
    return _whoami(where)


def _whoami(where: str) -> WhoAmI:
    context = current_context()
    return WhoAmI(
        where=where,
        user_id=context.user_id if context else None,
        tenant_id=context.tenant_id if context else None,
        roles=list(context.roles) if context else [],
        correlation_id=context.correlation_id if context else None,
    )


class _Progress:
    def __init__(self, total: int) -> None:
        self.progress = Progress(total=total)
        self.events: list[ProgressEvent] = []

    def record(self, kind: EventKind, step: str | None = None) -> None:
        if kind is EventKind.STEP_COMPLETED:
            self.progress.completed += 1
        self.progress.current_step = step
        self.progress.last_offset += 1
        self.events.append(
            ProgressEvent(
                offset=self.progress.last_offset,
                at=workflow.now(),
                kind=kind,
                step=step,
                completed=self.progress.completed,
                total=self.progress.total,
            )
        )

    def report(self, request: ProgressRequest) -> ProgressReport:
        events = [e for e in self.events if e.offset > request.after_offset]
        return ProgressReport(progress=self.progress, events=events[: request.limit])


@workflow.defn(name="demo_steps")
class StepsWorkflow:
    def __init__(self) -> None:
        self._progress = _Progress(total=0)

    @workflow.query(name="progress")
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: StepsInput) -> StepsResult:
        self._progress = _Progress(total=input.steps)
        self._progress.record(EventKind.STARTED)
        done: list[str] = []
        try:
            for index in range(input.steps):
                step = f"s{index}"
                self._progress.record(EventKind.STEP_STARTED, step)
                await workflow.execute_activity(
                    do_step,
                    args=[input.label, step, input.step_delay_ms],
                    start_to_close_timeout=timedelta(seconds=30),
                )
                done.append(step)
                self._progress.record(EventKind.STEP_COMPLETED, step)
        except (asyncio.CancelledError, FailureError) as error:
            # Not BaseException: a workflow evicted from the worker cache must not compensate.
            self._progress.record(EventKind.STEP_FAILED, f"s{len(done)}")
            compensated = await asyncio.shield(asyncio.ensure_future(self._compensate(input, done)))
            if is_cancelled_exception(error):
                raise
            raise ApplicationError(
                "the steps could not all be done",
                {"compensations": compensated},
                type="ExternalServiceError",
                non_retryable=True,
            ) from error
        return StepsResult(label=input.label, done=done)

    async def _compensate(self, input: StepsInput, done: list[str]) -> list[str]:
        ran: list[str] = []
        for step in reversed(done):
            self._progress.record(EventKind.COMPENSATION_STARTED, step)
            await workflow.execute_activity(
                undo_step, args=[input.label, step], start_to_close_timeout=timedelta(seconds=30)
            )
            ran.append(f"undo_{step}")
            self._progress.record(EventKind.COMPENSATION_COMPLETED, step)
        return ran


@workflow.defn(name="demo_child")
class ChildWorkflow:
    @workflow.run
    async def run(self) -> list[WhoAmI]:
        inside = _whoami("child_workflow")
        from_activity = await workflow.execute_activity(
            whoami, "child_activity", start_to_close_timeout=timedelta(seconds=10)
        )
        return [inside, from_activity]


@workflow.defn(name="demo_context")
class ContextWorkflow:
    def __init__(self) -> None:
        self._signalled: WhoAmI | None = None

    @workflow.signal(name="poke")
    def poke(self) -> None:
        self._signalled = _whoami("signal")

    @workflow.query(name="who")
    def who(self) -> WhoAmI:
        return _whoami("query")

    @workflow.run
    async def run(self) -> list[WhoAmI]:
        seen = [_whoami("workflow")]
        seen.append(
            await workflow.execute_activity(
                whoami, "activity", start_to_close_timeout=timedelta(seconds=10)
            )
        )
        seen.extend(
            await workflow.execute_child_workflow(
                ChildWorkflow.run, id=f"{workflow.info().workflow_id}-child"
            )
        )
        await workflow.wait_condition(lambda: self._signalled is not None)
        assert self._signalled is not None
        seen.append(self._signalled)
        return seen


@workflow.defn(name="demo_wait")
class WaitWorkflow:
    """Waits until cancelled or a timer fires; used for status mapping."""

    @workflow.run
    async def run(self, input: WaitInput) -> str:
        await workflow.sleep(timedelta(seconds=input.seconds))
        return "woke"


@workflow.defn(name="demo_continue")
class ContinueWorkflow:
    @workflow.run
    async def run(self, input: WaitInput) -> int:
        if input.seconds > 0:
            workflow.continue_as_new(WaitInput(seconds=input.seconds - 1))
        await workflow.sleep(timedelta(seconds=60))
        return 0


WORKFLOWS: list[type[Any]] = [
    StepsWorkflow,
    ChildWorkflow,
    ContextWorkflow,
    WaitWorkflow,
    ContinueWorkflow,
]
ACTIVITIES: list[Callable[..., Any]] = [do_step, undo_step, whoami]
