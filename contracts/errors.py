"""One error taxonomy for the whole system.

Each kind says whether Temporal should retry it and how it reaches clients: an HTTP status
(problem+json) and a GraphQL ``extensions.code``. Activities raise
``ApplicationError(type=kind.value, non_retryable=not kind.retryable)``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ErrorKind(StrEnum):
    VALIDATION = "ValidationError"
    AUTHENTICATION = "AuthenticationError"
    AUTHORIZATION = "AuthorizationError"
    TENANT_ISOLATION = "TenantIsolationViolation"
    NOT_FOUND = "NotFoundError"
    CONFLICT = "ConflictError"
    QUOTA_EXCEEDED = "QuotaExceededError"
    DATABASE = "DatabaseError"
    NETWORK = "NetworkError"
    EXTERNAL_SERVICE = "ExternalServiceError"
    INTERNAL = "InternalError"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]

    @property
    def graphql_code(self) -> str:
        return _GRAPHQL_CODE[self]


_RETRYABLE = frozenset({ErrorKind.DATABASE, ErrorKind.NETWORK, ErrorKind.EXTERNAL_SERVICE})

# Another tenant's resource is "not found", never "forbidden": isolation violations map to 404.
_HTTP_STATUS = {
    ErrorKind.VALIDATION: 422,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.AUTHORIZATION: 403,
    ErrorKind.TENANT_ISOLATION: 404,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.QUOTA_EXCEEDED: 409,
    ErrorKind.DATABASE: 503,
    ErrorKind.NETWORK: 503,
    ErrorKind.EXTERNAL_SERVICE: 503,
    ErrorKind.INTERNAL: 500,
}
_GRAPHQL_CODE = {
    ErrorKind.VALIDATION: "BAD_USER_INPUT",
    ErrorKind.AUTHENTICATION: "UNAUTHENTICATED",
    ErrorKind.AUTHORIZATION: "FORBIDDEN",
    ErrorKind.TENANT_ISOLATION: "NOT_FOUND",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.CONFLICT: "CONFLICT",
    ErrorKind.QUOTA_EXCEEDED: "CONFLICT",
    ErrorKind.DATABASE: "UNAVAILABLE",
    ErrorKind.NETWORK: "UNAVAILABLE",
    ErrorKind.EXTERNAL_SERVICE: "UNAVAILABLE",
    ErrorKind.INTERNAL: "INTERNAL",
}


def error_kind(type_name: str | None) -> ErrorKind:
    """The kind for an ``ApplicationError.type``; anything unknown is internal."""
    if type_name is None:
        return ErrorKind.INTERNAL
    try:
        return ErrorKind(type_name)
    except ValueError:
        return ErrorKind.INTERNAL


class OperationError(BaseModel):
    """The safe description of a failed operation: no stack trace, no internal message."""

    kind: ErrorKind
    message: str
    compensations: list[str] = Field(default_factory=list)
