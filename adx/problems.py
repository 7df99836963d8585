"""``application/problem+json`` (RFC 9457) responses, the one HTTP error format of the system."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from contracts.errors import ErrorKind

PROBLEM_JSON = "application/problem+json"

# The JSON schema of a problem document, as the OpenAPI documents give it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_TITLES = {
    ErrorKind.VALIDATION: "Invalid request",
    ErrorKind.AUTHENTICATION: "Authentication required",
    ErrorKind.AUTHORIZATION: "Not allowed",
    ErrorKind.TENANT_ISOLATION: "Not found",
    ErrorKind.NOT_FOUND: "Not found",
    ErrorKind.CONFLICT: "Conflict",
    ErrorKind.QUOTA_EXCEEDED: "Quota exceeded",
    ErrorKind.DATABASE: "Service unavailable",
    ErrorKind.NETWORK: "Service unavailable",
    ErrorKind.EXTERNAL_SERVICE: "Service unavailable",
    ErrorKind.INTERNAL: "Internal error",
}


def problem_type(kind: ErrorKind) -> str:
    # Isolation violations look exactly like a missing resource from outside.
    shown = ErrorKind.NOT_FOUND if kind is ErrorKind.TENANT_ISOLATION else kind
    return f"urn:adx:problem:{shown.value}"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    request: HTTPConnection | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if request is not None:
        correlation_id = request.scope.get("state", {}).get("correlation_id")
        if correlation_id:
            body["correlation_id"] = correlation_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_for(
    kind: ErrorKind,
    detail: str,
    *,
    request: HTTPConnection | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    if kind is ErrorKind.TENANT_ISOLATION:
        detail = "not found"
    return problem(
        kind.http_status,
        _TITLES[kind],
        detail,
        type_=problem_type(kind),
        request=request,
        headers=headers,
        **extra,
    )


def validation_problem(
    error: ValidationError, request: HTTPConnection | None = None
) -> JSONResponse:
    """422 with one entry per invalid field; the rejected values are not echoed back."""
    fields = [
        {"field": ".".join(str(part) for part in e["loc"]) or "body", "message": e["msg"]}
        for e in error.errors(include_input=False, include_url=False)
    ]
    return problem_for(
        ErrorKind.VALIDATION, "the request has invalid fields", request=request, errors=fields
    )


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response of a problem document (the ``Problem`` schema in components)."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


async def http_exception_problem(request: Request, error: Exception) -> JSONResponse:
    """Starlette's HTTPException (unknown route, wrong method...) as a problem, with the
    headers it carries (``Allow`` on a 405)."""
    assert isinstance(error, HTTPException)
    try:
        title = HTTPStatus(error.status_code).phrase
    except ValueError:  # a status code outside the standard's
        title = "Error"
    return problem(
        error.status_code,
        title,
        str(error.detail),
        request=request,
        headers=error.headers,
    )
