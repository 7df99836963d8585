"""The benchmark's own workflows, run by the bench worker process on ``bench-task-queue``.

``bench_noop`` is the floor of a workflow round trip. ``bench_progress`` runs one activity per
step; the activity stamps the wall clock right before it completes and the workflow records
that stamp in the step's progress event, so a subscriber can measure how long the event took
to reach it. No client imports: the workflow sandbox re-imports this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow

from contracts.progress import (
    EventKind,
    Progress,
    ProgressEvent,
    ProgressReport,
    ProgressRequest,
)

BENCH_TASK_QUEUE = "bench-task-queue"
NOOP = "bench_noop"
PROGRESS = "bench_progress"
# The details key of a completed step: the activity's wall clock (time.time()) at completion.
DONE_AT = "done_at"


class StepsInput(BaseModel):
    delays_ms: list[int]


@activity.defn(name="bench_step")
async def bench_step(delay_ms: int) -> float:
    await asyncio.sleep(delay_ms / 1000)
    return time.time()


@workflow.defn(name=NOOP)
class NoopWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "ok"


@workflow.defn(name=PROGRESS)
class ProgressWorkflow:
    def __init__(self) -> None:
        self._progress = Progress()
        self._events: list[ProgressEvent] = []

    @workflow.query(name="progress")
    def progress(self, request: ProgressRequest) -> ProgressReport:
        start = min(request.after_offset, len(self._events))
        return ProgressReport(
            progress=self._progress, events=self._events[start : start + request.limit]
        )

    def _record(self, kind: EventKind, step: str, done_at: float | None = None) -> None:
        if kind is EventKind.STEP_COMPLETED:
            self._progress.completed += 1
        self._progress.current_step = step
        self._progress.last_offset += 1
        self._events.append(
            ProgressEvent(
                offset=self._progress.last_offset,
                at=workflow.now(),
                kind=kind,
                step=step,
                completed=self._progress.completed,
                total=self._progress.total,
                details={DONE_AT: done_at} if done_at is not None else {},
            )
        )

    @workflow.run
    async def run(self, input: StepsInput) -> int:
        self._progress.total = len(input.delays_ms)
        for index, delay in enumerate(input.delays_ms):
            step = f"s{index}"
            self._record(EventKind.STEP_STARTED, step)
            done_at = await workflow.execute_activity(
                bench_step, delay, start_to_close_timeout=timedelta(seconds=30)
            )
            self._record(EventKind.STEP_COMPLETED, step, done_at)
        return len(input.delays_ms)


WORKFLOWS: list[type[Any]] = [NoopWorkflow, ProgressWorkflow]
ACTIVITIES: list[Callable[..., Any]] = [bench_step]
