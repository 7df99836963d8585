"""Status of an operation (a workflow execution) as callers see it."""

from __future__ import annotations

from enum import StrEnum


class OperationStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        return self is not OperationStatus.RUNNING
