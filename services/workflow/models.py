"""The workflow service's HTTP boundary and store rows (workflow models are in
``contracts.workflow``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.progress import EventKind, ProgressEvent
from workflow_client.models import Operation


class ExportRow(BaseModel):
    request_id: str
    user_id: str
    tenant_id: str
    file_name: str
    size_bytes: int
    sha256: str
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Requests ---------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComplianceRequest(_Request):
    """``user_id`` defaults to the caller; another member needs a tenant admin."""

    user_id: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=300)
    # A user's erasure of their own data: the proof from POST /api/auth/reauthenticate.
    reauthentication: str | None = Field(default=None, min_length=1, max_length=200)


# Responses --------------------------------------------------------------------------------


class OperationStarted(BaseModel):
    operation_id: str


class OperationDetail(BaseModel):
    operation: Operation
    current_step: str | None
    completed: int
    total: int


class HistoryStep(BaseModel):
    offset: int
    at: datetime
    kind: EventKind
    step: str | None
    message: str | None

    @classmethod
    def of(cls, event: ProgressEvent) -> HistoryStep:
        return cls(
            offset=event.offset,
            at=event.at,
            kind=event.kind,
            step=event.step,
            message=event.message,
        )


class OperationHistory(BaseModel):
    operation_id: str
    steps: list[HistoryStep]
