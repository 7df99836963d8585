"""ProgressHub: for each operation watched in this process, exactly one watcher task reads the
workflow's progress log (its ``progress`` query) and fans each new event out to every
subscriber of that operation; the watcher stops when the last subscriber leaves.

Polling is adaptive: ``min_interval`` right after a change, doubling while nothing changes, up
to ``max_interval``. Completion is not polled for: the watcher holds the operation's result
(a long poll) and emits the terminal event as soon as the workflow closes.

Fan-out without per-subscriber buffers: the watcher appends each event once to the
operation's shared log and wakes the subscribers; each subscriber reads the log at its own
pace through its own cursor. A slow subscriber therefore never delays the others and costs no
memory beyond its cursor (the log itself is the workflow's own log, bounded by its history),
and it never skips an event: it is simply further behind.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel

from contracts.context import RequestContext
from contracts.operations import OperationStatus
from contracts.progress import Progress, ProgressEvent
from subscriptions.events import HubEvent, OperationFailure, StreamInterrupted
from workflow_client.errors import OperationNotFound, WorkflowFailed
from workflow_client.models import Operation
from workflow_client.operations import WorkflowOperations

log = structlog.stdlib.get_logger(__name__)

ADMIN_ROLES = frozenset({"owner", "admin"})


@dataclass(eq=False)
class _Watcher:
    operation: Operation
    log: list[HubEvent] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    terminal: HubEvent | None = None
    failed: bool = False
    subscribers: int = 0
    task: asyncio.Task[None] | None = None
    reads: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_offset(self) -> int:
        return self.log[-1].offset if self.log else 0

    def publish(self, event: HubEvent) -> None:
        if event.terminal:
            self.terminal = event
        else:
            self.log.append(event)
        self.wake()

    def wake(self) -> None:
        # Wake everyone waiting now; later waits use a fresh event.
        self.changed.set()
        self.changed = asyncio.Event()


class ProgressHub:
    def __init__(
        self,
        operations: WorkflowOperations,
        *,
        min_interval: float = 0.05,
        max_interval: float = 1.0,
    ) -> None:
        self._ops = operations
        self._min = min_interval
        self._max = max_interval
        self._watchers: dict[str, _Watcher] = {}
        self.watchers_started = 0

    @property
    def watching(self) -> list[str]:
        return list(self._watchers)

    def reads(self, operation_id: str) -> int:
        """Progress queries the current watcher of the operation has made (0: none)."""
        watcher = self._watchers.get(operation_id)
        return watcher.reads if watcher else 0

    async def subscribe(
        self, context: RequestContext, operation_id: str, from_offset: int = 0
    ) -> AsyncIterator[HubEvent]:
        """The operation's events after ``from_offset``, then live ones until it ends.

        Only the operation's own user or an admin of its tenant may watch it; to anyone
        else it does not exist (OperationNotFound)."""
        operation = await self._ops.describe(context, operation_id)
        if operation.user_id != context.user_id and not ADMIN_ROLES.intersection(context.roles):
            raise OperationNotFound(operation_id)
        return self._stream(operation, max(0, from_offset))

    async def _stream(self, operation: Operation, from_offset: int) -> AsyncIterator[HubEvent]:
        watcher = self._watcher_for(operation)
        watcher.subscribers += 1
        last = from_offset
        try:
            while True:
                index = bisect.bisect_right(watcher.log, last, key=lambda e: e.offset)
                for event in watcher.log[index:]:
                    last = event.offset
                    yield event
                if last < watcher.last_offset:
                    continue  # more arrived while this subscriber was busy
                if watcher.terminal is not None:
                    if watcher.terminal.offset > last:
                        yield watcher.terminal
                    return
                if watcher.failed:
                    raise StreamInterrupted(operation.id, last)
                await watcher.changed.wait()
        finally:
            watcher.subscribers -= 1
            if watcher.subscribers == 0 and watcher.terminal is None:
                self._stop(watcher)

    # The watcher --------------------------------------------------------------------

    def _watcher_for(self, operation: Operation) -> _Watcher:
        watcher = self._watchers.get(operation.id)
        if watcher is None:
            watcher = _Watcher(operation)
            self._watchers[operation.id] = watcher
            watcher.task = asyncio.create_task(self._watch(watcher))
            self.watchers_started += 1
        return watcher

    def _stop(self, watcher: _Watcher) -> None:
        if self._watchers.get(watcher.operation.id) is watcher:
            del self._watchers[watcher.operation.id]
        if watcher.task is not None:
            watcher.task.cancel()

    async def _watch(self, watcher: _Watcher) -> None:
        operation = watcher.operation
        owner = RequestContext(user_id=operation.user_id or "", tenant_id=operation.tenant_id)
        outcome = asyncio.create_task(self._outcome(owner, operation.id))
        interval = self._min
        try:
            while True:
                changed = await self._poll(watcher)
                if outcome.done():
                    await self._poll(watcher)  # events recorded just before the end
                    watcher.publish(await self._terminal_event(watcher, owner, outcome))
                    return
                interval = self._min if changed else min(interval * 2, self._max)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(outcome), interval)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("progress.watcher_failed", operation_id=operation.id)
            watcher.failed = True
            watcher.wake()
        finally:
            outcome.cancel()
            # Ended either way: a later subscriber starts a new watcher, which for a closed
            # operation answers from workflow_client's closed-operation cache.
            if self._watchers.get(operation.id) is watcher:
                del self._watchers[operation.id]

    async def _poll(self, watcher: _Watcher) -> bool:
        watcher.reads += 1
        report = await self._ops.query_progress(watcher.operation, after_offset=watcher.last_offset)
        watcher.progress = report.progress
        fresh = [e for e in report.events if e.offset > watcher.last_offset]
        for event in fresh:
            watcher.publish(
                HubEvent(
                    operation_id=watcher.operation.id,
                    offset=event.offset,
                    status=OperationStatus.RUNNING,
                    progress=_progress_at(report.progress, event),
                    event=event,
                )
            )
        return bool(fresh)

    async def _outcome(self, owner: RequestContext, operation_id: str) -> tuple[str, Any]:
        try:
            return ("ok", await self._ops.result(owner, operation_id))
        except WorkflowFailed as error:
            return ("failed", error)

    async def _terminal_event(
        self, watcher: _Watcher, owner: RequestContext, outcome: asyncio.Task[tuple[str, Any]]
    ) -> HubEvent:
        kind, value = outcome.result()
        operation = await self._ops.describe(owner, watcher.operation.id)
        error = None
        result = None
        if kind == "failed":
            error = OperationFailure(
                kind=value.kind, message=value.message, compensations=value.compensations
            )
        else:
            result = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return HubEvent(
            operation_id=operation.id,
            offset=watcher.last_offset + 1,
            status=operation.status,
            progress=watcher.progress,
            terminal=True,
            result=result,
            error=error,
        )


def _progress_at(latest: Progress, event: ProgressEvent) -> Progress:
    """The progress as of this event (a poll can bring several)."""
    return latest.model_copy(
        update={
            "completed": event.completed,
            "total": event.total,
            "current_step": event.step if event.step is not None else latest.current_step,
            "last_offset": event.offset,
        }
    )
