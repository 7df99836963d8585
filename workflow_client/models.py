"""What workflow_client hands back to its callers (BFFs, gateway)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field, PrivateAttr

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
    # False while the workflow has not completed its first task (so has recorded nothing, and
    # a query would wait for that task): known from the history's length when described.
    _has_run: bool = PrivateAttr(default=True)

    @property
    def has_run(self) -> bool:
        return self._has_run


class OperationPage(BaseModel):
    operations: list[Operation]
    next_page_token: str | None = Field(
        default=None, description="Opaque; pass it back to get the next page."
    )


class PageTokens:
    """Temporal's page tokens, signed: a token that was not issued here is refused at once
    (sent to the server, a forged token is retried by the client for seconds)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, raw: bytes | None) -> str | None:
        if not raw:
            return None
        return base64.urlsafe_b64encode(self._mac(raw) + raw).decode()

    def decode(self, token: str | None) -> bytes | None:
        """The raw token; ValueError when it is malformed or not signed with this key."""
        if token is None:
            return None
        blob = base64.urlsafe_b64decode(token.encode())
        mac, raw = blob[:_MAC_SIZE], blob[_MAC_SIZE:]
        if not raw or not hmac.compare_digest(mac, self._mac(raw)):
            raise ValueError("page token not issued here")
        return raw

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:_MAC_SIZE]


_MAC_SIZE = 16


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
