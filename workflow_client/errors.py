"""The errors callers of workflow_client handle. Messages are safe to show a client."""

from __future__ import annotations

from contracts.errors import ErrorKind


class WorkflowClientError(Exception):
    """Base of every error raised by workflow_client."""


class TemporalUnavailable(WorkflowClientError):
    def __init__(self, address: str, namespace: str, reason: str) -> None:
        super().__init__(
            f"Temporal is unavailable at {address} (namespace {namespace!r}): {reason}"
        )
        self.address = address
        self.namespace = namespace


class OperationNotFound(WorkflowClientError):
    """No such operation, or one the caller's tenant does not own (never reveal which)."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"operation {operation_id!r} not found")
        self.operation_id = operation_id


class OperationAlreadyExists(WorkflowClientError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"operation {operation_id!r} already exists")
        self.operation_id = operation_id


class InvalidOperationId(WorkflowClientError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"{operation_id!r} is not a valid operation id")
        self.operation_id = operation_id


class InvalidPageToken(WorkflowClientError, ValueError):
    """A page token that did not come from a previous page."""

    def __init__(self) -> None:
        super().__init__("invalid page token")


class UnknownWorkflowType(WorkflowClientError):
    def __init__(self, workflow_type: str) -> None:
        super().__init__(f"unknown workflow type {workflow_type!r}")
        self.workflow_type = workflow_type


class WorkflowFailed(WorkflowClientError):
    """The operation ended without a result: failed, cancelled, terminated or timed out."""

    def __init__(
        self,
        operation_id: str,
        kind: ErrorKind,
        message: str,
        compensations: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.operation_id = operation_id
        self.kind = kind
        self.message = message
        self.compensations = compensations or []
