"""What a failed gateway call raises: one class per kind of answer, carrying the HTTP status
and the ``application/problem+json`` fields, so a BFF maps the class to a GraphQL code and
shows ``detail`` and the field errors without reading HTTP itself.

The texts come from the gateway's problem documents, which never carry internals; a body
that is not a problem document is never echoed.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from contracts.errors import ErrorKind

_PROBLEM_TYPE_PREFIX = "urn:adx:problem:"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class GatewayError(Exception):
    """A gateway answer that is not a success, or no answer at all (``status`` None)."""

    default_title: ClassVar[str] = "Gateway error"

    def __init__(
        self,
        status: int | None = None,
        *,
        title: str | None = None,
        detail: str | None = None,
        type: str = "about:blank",  # the problem+json field name
        errors: Sequence[FieldError] = (),
        correlation_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.title = title or self.default_title
        self.detail = detail
        self.type = type
        self.errors = tuple(errors)
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        super().__init__(detail or self.title)

    @property
    def kind(self) -> ErrorKind | None:
        """The system's error kind, from an ``urn:adx:problem:<Kind>`` type, else the status."""
        if self.type.startswith(_PROBLEM_TYPE_PREFIX):
            try:
                return ErrorKind(self.type.removeprefix(_PROBLEM_TYPE_PREFIX))
            except ValueError:
                pass
        return _KIND_BY_STATUS.get(self.status) if self.status is not None else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, title={self.title!r}, "
            f"detail={self.detail!r})"
        )


class GatewayBadRequest(GatewayError):
    """400, 413 or 422; ``errors`` lists the invalid fields."""

    default_title = "Invalid request"


class GatewayUnauthorized(GatewayError):
    """401: no valid token."""

    default_title = "Authentication required"


class GatewayForbidden(GatewayError):
    """403: authenticated, not allowed."""

    default_title = "Not allowed"


class GatewayNotFound(GatewayError):
    """404 or 410 (another tenant's resource is "not found" too)."""

    default_title = "Not found"


class GatewayConflict(GatewayError):
    """409: conflicts with the current state (or a quota)."""

    default_title = "Conflict"


class GatewayRateLimited(GatewayError):
    """429; ``retry_after`` seconds from the ``Retry-After`` header when given."""

    default_title = "Too many requests"


class GatewayUnavailable(GatewayError):
    """502, 503, 504, or no answer: ``reason`` is ``"http"``, ``"timeout"``,
    ``"connection"`` or ``"circuit_open"`` (failing fast after repeated failures)."""

    default_title = "Service unavailable"

    def __init__(self, status: int | None = None, *, reason: str = "http", **fields: Any) -> None:
        super().__init__(status, **fields)
        self.reason = reason


class GatewayServerError(GatewayError):
    """500 or another 5xx, or a success whose body is not JSON."""

    default_title = "Internal error"


_KIND_BY_STATUS: dict[int | None, ErrorKind] = {
    400: ErrorKind.VALIDATION,
    413: ErrorKind.VALIDATION,
    422: ErrorKind.VALIDATION,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.AUTHORIZATION,
    404: ErrorKind.NOT_FOUND,
    410: ErrorKind.NOT_FOUND,
    409: ErrorKind.CONFLICT,
    500: ErrorKind.INTERNAL,
    502: ErrorKind.EXTERNAL_SERVICE,
    503: ErrorKind.EXTERNAL_SERVICE,
    504: ErrorKind.EXTERNAL_SERVICE,
}

_CLASS_BY_STATUS: dict[int, type[GatewayError]] = {
    400: GatewayBadRequest,
    413: GatewayBadRequest,
    422: GatewayBadRequest,
    401: GatewayUnauthorized,
    403: GatewayForbidden,
    404: GatewayNotFound,
    410: GatewayNotFound,
    409: GatewayConflict,
    429: GatewayRateLimited,
    502: GatewayUnavailable,
    503: GatewayUnavailable,
    504: GatewayUnavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return {}
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _field_errors(raw: Any) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    found = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        name = _text(item.get("field")) or _text(item.get("pointer")) or "body"
        message = _text(item.get("message")) or _text(item.get("detail")) or "invalid"
        found.append(FieldError(name, message))
    return found


def error_from_response(response: httpx.Response) -> GatewayError:
    """The exception for a non-success answer, with the problem document's fields."""
    status = response.status_code
    body = _problem_body(response)
    cls = _CLASS_BY_STATUS.get(status)
    if cls is None:
        cls = GatewayServerError if status >= 500 else GatewayError
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return cls(
        status,
        title=_text(body.get("title")) or response.reason_phrase or None,
        detail=_text(body.get("detail")),
        type=_text(body.get("type")) or "about:blank",
        errors=_field_errors(body.get("errors")),
        correlation_id=_text(body.get("correlation_id"))
        or response.headers.get("x-correlation-id"),
        retry_after=None if retry_after is None else math.ceil(retry_after * 1000) / 1000,
    )
