"""workflow_client errors as problem+json responses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from adx.problems import problem, problem_for
from contracts.errors import ErrorKind
from workflow_client.errors import (
    InvalidOperationId,
    InvalidPageToken,
    OperationAlreadyExists,
    OperationNotFound,
    TemporalUnavailable,
    UnknownWorkflowType,
    WorkflowClientError,
    WorkflowFailed,
)


def problem_from(error: WorkflowClientError, request: Request) -> JSONResponse:
    if isinstance(error, OperationNotFound | InvalidOperationId):
        return problem_for(ErrorKind.NOT_FOUND, "operation not found", request=request)
    if isinstance(error, InvalidPageToken):
        return problem_for(ErrorKind.VALIDATION, "invalid page_token", request=request)
    if isinstance(error, UnknownWorkflowType):
        return problem_for(ErrorKind.NOT_FOUND, str(error), request=request)
    if isinstance(error, OperationAlreadyExists):
        return problem_for(ErrorKind.CONFLICT, str(error), request=request)
    if isinstance(error, WorkflowFailed):
        return problem_for(
            error.kind,
            error.message,
            request=request,
            operation_id=error.operation_id,
            compensations=error.compensations,
        )
    if isinstance(error, TemporalUnavailable):
        return problem(
            503,
            "Service unavailable",
            "the workflow engine is unavailable",
            request=request,
            headers={"Retry-After": "5"},
        )
    return problem_for(ErrorKind.INTERNAL, "internal error", request=request)
