"""Fault injection in front of the real activities, for tests and the history recorder.

A worker interceptor: for one workflow (and its children) one run of a named activity (the
first, or the nth) is made to fail for good, to hang until cancelled, or to hold still before
or after its real body runs, so a test can cancel or kill at exactly that point. Nothing else
is faked: a held activity runs the real code, with its real transaction, once released.

The points, named as the fault-injection tests use them:

``fail``           the activity fails for good (non-retryable), its body never runs
``hang``           it heartbeats until the cancel reaches it, its body never runs (a cancel
                   before the step did anything)
``hold_before``    it waits, deaf to the cancel, then runs its body (a cancel while the step is
                   blocked before its transaction commits)
``hold_after``     its body ran and committed; it waits, then reports the result (a cancel
                   racing the step's completion)
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

import temporalio.worker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorKind


class Point(enum.StrEnum):
    FAIL = "fail"
    HANG = "hang"
    HOLD_BEFORE = "hold_before"
    HOLD_AFTER = "hold_after"
    # The faulted run commits and loses its answer (as when its worker dies, or it times
    # out, right after the commit); its retry is then held after committing, like HOLD_AFTER.
    LOST_ANSWER = "lost_answer"


@dataclass
class Fault:
    point: Point
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0  # how often the activity's real body ran under this fault
    # The run of the activity in this workflow that is faulted: 1 for the first, 2 when the
    # workflow calls it in an earlier step too; runs after it are left alone.
    nth: int = 1
    seen: int = 0
    # The workflow whose activity was faulted (a child's, for a step run by a child).
    workflow_id: str | None = None


class FaultInjector(temporalio.worker.Interceptor):
    def __init__(self) -> None:
        self._faults: dict[tuple[str, str], Fault] = {}

    def add(self, workflow_id: str, activity_name: str, point: Point, nth: int = 1) -> Fault:
        fault = Fault(point, nth=nth)
        self._faults[(workflow_id, str(activity_name))] = fault
        return fault

    def fail(self, workflow_id: str, activity_name: str) -> None:
        self.add(workflow_id, activity_name, Point.FAIL)

    def hang(self, workflow_id: str, activity_name: str) -> asyncio.Event:
        """The returned event is set once the hanging activity has started."""
        return self.add(workflow_id, activity_name, Point.HANG).reached

    def clear(self, workflow_id: str) -> None:
        for key in [key for key in self._faults if key[0] == workflow_id]:
            self._faults[key].release.set()
            del self._faults[key]

    def find(self, workflow_id: str | None, activity_name: str) -> Fault | None:
        if workflow_id is None:
            return None
        for (owner, name), fault in self._faults.items():
            if name == activity_name and (
                workflow_id == owner or workflow_id.startswith(f"{owner}-")
            ):
                return fault
        return None

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _FaultyActivity(next, self)


class _FaultyActivity(temporalio.worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporalio.worker.ActivityInboundInterceptor, faults: FaultInjector
    ) -> None:
        super().__init__(next)
        self._injector = faults

    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        fault = self._injector.find(info.workflow_id, info.activity_type)
        if fault is None:
            return await super().execute_activity(input)
        fault.seen += 1
        fault.workflow_id = info.workflow_id
        point = fault.point
        if point is Point.LOST_ANSWER and fault.seen == fault.nth:
            fault.runs += 1
            await super().execute_activity(input)
            raise ApplicationError("injected: the answer was lost", type=ErrorKind.DATABASE.value)
        if point is Point.LOST_ANSWER and fault.seen == fault.nth + 1:
            point = Point.HOLD_AFTER  # the retry
        elif fault.seen != fault.nth:
            # Once: the same activity called again (a compensation's call) runs as usual.
            return await super().execute_activity(input)
        if point is Point.FAIL:
            fault.reached.set()
            raise ApplicationError(
                "injected failure", type=ErrorKind.EXTERNAL_SERVICE.value, non_retryable=True
            )
        if point is Point.HANG:
            fault.reached.set()
            while True:  # until the cancellation arrives (with a heartbeat response)
                activity.heartbeat()
                await asyncio.sleep(0.1)
        if point is Point.HOLD_BEFORE:
            fault.reached.set()
            await fault.release.wait()
        fault.runs += 1
        result = await super().execute_activity(input)
        if point is Point.HOLD_AFTER:
            fault.reached.set()
            await fault.release.wait()
        return result
