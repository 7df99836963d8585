"""Progress every workflow reports through the ``progress`` query.

A workflow keeps an ordered event log; each event has a per-operation offset that only grows,
so an observer that saw offset N can ask for what came after it and miss nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, JsonValue


class EventKind(StrEnum):
    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_COMPLETED = "compensation_completed"
    COMPENSATION_FAILED = "compensation_failed"
    MESSAGE = "message"


class ProgressEvent(BaseModel):
    offset: int = Field(ge=1)
    at: datetime
    kind: EventKind
    step: str | None = None
    message: str | None = None
    completed: int = 0
    total: int = 0
    details: dict[str, JsonValue] = Field(default_factory=dict)


class Progress(BaseModel):
    current_step: str | None = None
    completed: int = 0
    total: int = 0
    details: dict[str, JsonValue] = Field(default_factory=dict)
    last_offset: int = 0

    @property
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 0.0


class ProgressRequest(BaseModel):
    # Events with an offset greater than this are returned.
    after_offset: int = Field(default=0, ge=0)
    limit: int = Field(default=500, ge=1, le=5000)


class ProgressReport(BaseModel):
    progress: Progress
    events: list[ProgressEvent] = Field(default_factory=list)
