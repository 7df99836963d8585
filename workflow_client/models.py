"""What workflow_client hands back to its callers (BFFs, gateway)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from contracts.operations import OperationStatus
from contracts.progress import ProgressReport
from workflow_client.errors import WorkflowClientError

T = TypeVar("T")


class Operation(BaseModel):
    id: str
    workflow_type: str
    status: OperationStatus
    tenant_id: str
    user_id: str | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    retry_of: str | None = None


class OperationPage(BaseModel):
    operations: list[Operation]
    next_page_token: str | None = Field(
        default=None, description="Opaque; pass it back to get the next page."
    )

    @staticmethod
    def encode_token(raw: bytes | None) -> str | None:
        return base64.urlsafe_b64encode(raw).decode() if raw else None

    @staticmethod
    def decode_token(token: str | None) -> bytes | None:
        return base64.urlsafe_b64decode(token.encode()) if token else None


class OperationSnapshot(BaseModel):
    """Status and progress at one moment; for a closed operation it never changes again."""

    operation: Operation
    report: ProgressReport


@dataclass(frozen=True)
class StartRequest:
    workflow_type: str
    input: BaseModel | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class StartOutcome:
    """One item of ``start_many``: exactly one of ``operation`` and ``error`` is set."""

    request: StartRequest
    operation: Operation | None = None
    error: WorkflowClientError | None = None


@dataclass(frozen=True)
class ExecuteOutcome(Generic[T]):
    """``result`` is set when the operation completed within the budget; otherwise it is
    still running and the caller follows ``operation``."""

    operation: Operation
    result: T | None = None

    @property
    def completed(self) -> bool:
        return self.operation.status is OperationStatus.COMPLETED
