"""What a progress subscriber receives."""

from __future__ import annotations

from pydantic import BaseModel, JsonValue

from contracts.errors import ErrorKind
from contracts.operations import OperationStatus
from contracts.progress import Progress, ProgressEvent


class OperationFailure(BaseModel):
    kind: ErrorKind
    message: str
    compensations: list[str] = []


class HubEvent(BaseModel):
    """One event of an operation's stream. ``offset`` only grows: the workflow's own event
    offsets, then one more for the terminal event. A client that saw offset N resumes with
    ``from_offset=N`` and gets exactly what came after."""

    operation_id: str
    offset: int
    status: OperationStatus
    progress: Progress
    event: ProgressEvent | None = None
    terminal: bool = False
    result: JsonValue | None = None
    error: OperationFailure | None = None


class StreamInterrupted(Exception):
    """The watcher could not read the operation's progress (Temporal unavailable). The
    subscriber resumes exactly by subscribing again from the last offset it received."""

    def __init__(self, operation_id: str, last_offset: int) -> None:
        super().__init__(
            f"progress of operation {operation_id} is unavailable; resume from offset {last_offset}"
        )
        self.operation_id = operation_id
        self.last_offset = last_offset
