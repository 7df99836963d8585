"""The progress a workflow reports through the ``progress`` query, kept in workflow state.

Deterministic (``workflow.now()``), so it rebuilds identically on replay: any process can read
the same ordered log, which is what live-progress subscribers resume from.
"""

from __future__ import annotations

from pydantic import JsonValue
from temporalio import workflow

from contracts.progress import EventKind, Progress, ProgressEvent, ProgressReport, ProgressRequest


class ProgressLog:
    def __init__(self, total: int = 0) -> None:
        self.progress = Progress(total=total)
        self.events: list[ProgressEvent] = []

    def record(
        self,
        kind: EventKind,
        step: str | None = None,
        message: str | None = None,
        **details: JsonValue,
    ) -> ProgressEvent:
        if kind is EventKind.STEP_COMPLETED:
            self.progress.completed += 1
        if kind in (EventKind.STEP_STARTED, EventKind.COMPENSATION_STARTED):
            self.progress.current_step = step
        self.progress.details = dict(details) if details else self.progress.details
        self.progress.last_offset += 1
        event = ProgressEvent(
            offset=self.progress.last_offset,
            at=workflow.now(),
            kind=kind,
            step=step,
            message=message,
            completed=self.progress.completed,
            total=self.progress.total,
            details=dict(details),
        )
        self.events.append(event)
        return event

    def set_total(self, total: int) -> None:
        self.progress.total = total

    def report(self, request: ProgressRequest) -> ProgressReport:
        # Offsets are 1..n with no gaps, so the events after an offset start at that index.
        start = min(request.after_offset, len(self.events))
        return ProgressReport(
            progress=self.progress, events=self.events[start : start + request.limit]
        )
