"""GraphQL errors carry a code in ``extensions.code``; nothing else reaches a client.

Codes: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT, UNAVAILABLE, INTERNAL.
Any other exception is masked as INTERNAL with a generic message (and logged).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from contracts.errors import ErrorKind
from gateway_client.errors import (
    GatewayBadRequest,
    GatewayConflict,
    GatewayError,
    GatewayForbidden,
    GatewayNotFound,
    GatewayRateLimited,
    GatewayUnauthorized,
    GatewayUnavailable,
)
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

log = structlog.stdlib.get_logger(__name__)


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class ClientError(Exception):
    """An error whose message is meant for the client, with its code."""

    def __init__(self, code: ErrorCode, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = {"code": code.value, **extensions}


def from_kind(kind: ErrorKind, message: str, **extensions: Any) -> ClientError:
    code = ErrorCode(kind.graphql_code)
    if kind is ErrorKind.TENANT_ISOLATION:
        message = "not found"
    if code is ErrorCode.INTERNAL:
        message = "internal error"
    return ClientError(code, message, **extensions)


def unauthenticated(message: str = "authentication required") -> ClientError:
    return ClientError(ErrorCode.UNAUTHENTICATED, message)


def not_found(what: str = "resource") -> ClientError:
    return ClientError(ErrorCode.NOT_FOUND, f"{what} not found")


def bad_input(message: str, fields: list[dict[str, str]] | None = None) -> ClientError:
    return ClientError(ErrorCode.BAD_USER_INPUT, message, **({"fields": fields} if fields else {}))


def is_client_error(error: GraphQLError) -> bool:
    """True for errors a client may see as they are: ours (ClientError) and GraphQL's own
    validation errors (no original error). Everything else is masked."""
    original = error.original_error
    if original is None:
        return True
    return isinstance(original, ClientError)


def code_of(error: GraphQLError) -> str:
    """The code the client sees for ``error`` (what the masking and format_client_error give
    it), known before either has run."""
    original = error.original_error
    if isinstance(original, ClientError):
        return original.code.value
    if original is not None:
        return ErrorCode.INTERNAL.value
    return str((error.extensions or {}).get("code") or ErrorCode.BAD_USER_INPUT.value)


def format_client_error(error: GraphQLError) -> GraphQLError:
    """Adds ``extensions.code`` to what a client may see."""
    original = error.original_error
    if isinstance(original, ClientError):
        error.extensions = {**(error.extensions or {}), **original.extensions}
    elif original is None and not (error.extensions or {}).get("code"):
        # Parse/validation errors (including depth/token/alias limits) are bad input.
        error.extensions = {**(error.extensions or {}), "code": ErrorCode.BAD_USER_INPUT.value}
    return error


class MaskInternalErrors(MaskErrors):
    """Client errors pass with their code; anything else becomes ``internal error`` with code
    INTERNAL (and is logged, with its stack, server-side only)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask, error_message="internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": ErrorCode.INTERNAL.value}
        return masked


def _should_mask(error: GraphQLError) -> bool:
    if is_client_error(error):
        format_client_error(error)
        return False
    log.error(
        "graphql.internal_error",
        path=error.path,
        error=type(error.original_error).__name__,
        exc_info=error.original_error,
    )
    return True


def from_workflow_error(error: WorkflowClientError) -> ClientError:
    """workflow_client's errors as GraphQL errors (another tenant's operation: NOT_FOUND)."""
    if isinstance(error, OperationNotFound | InvalidOperationId):
        return not_found("operation")
    if isinstance(error, UnknownWorkflowType | InvalidPageToken):
        return ClientError(ErrorCode.BAD_USER_INPUT, str(error))
    if isinstance(error, OperationAlreadyExists):
        return ClientError(ErrorCode.CONFLICT, str(error))
    if isinstance(error, WorkflowFailed):
        return from_kind(
            error.kind,
            error.message,
            operationId=error.operation_id,
            compensations=error.compensations,
        )
    if isinstance(error, TemporalUnavailable):
        return ClientError(ErrorCode.UNAVAILABLE, "the workflow engine is unavailable")
    return ClientError(ErrorCode.INTERNAL, "internal error")


def camel(name: str) -> str:
    """A service's field name (snake_case) as the schema spells it (camelCase)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def from_gateway_error(error: GatewayError) -> ClientError:
    """The gateway's problem+json answers as GraphQL errors (field names as the schema
    spells them)."""
    if isinstance(error, GatewayBadRequest):
        fields = [{"field": camel(f.field), "message": f.message} for f in error.errors]
        return bad_input(error.detail or "invalid input", fields)
    if isinstance(error, GatewayUnauthorized):
        return unauthenticated()
    if isinstance(error, GatewayForbidden):
        return ClientError(ErrorCode.FORBIDDEN, error.detail or "not allowed")
    if isinstance(error, GatewayNotFound):
        return ClientError(ErrorCode.NOT_FOUND, error.detail or "not found")
    if isinstance(error, GatewayConflict):
        return ClientError(ErrorCode.CONFLICT, error.detail or "conflict")
    if isinstance(error, GatewayRateLimited):
        return ClientError(ErrorCode.UNAVAILABLE, "rate limited", retryAfter=error.retry_after)
    if isinstance(error, GatewayUnavailable):
        return ClientError(ErrorCode.UNAVAILABLE, "a backend service is unavailable")
    return ClientError(ErrorCode.INTERNAL, "internal error")
