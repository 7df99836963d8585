"""The HTTP side of a service (server mode): the same health, readiness, identity and error
handling in every service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adx.bodies import BodyTooLarge, read_limited
from adx.identity import InvalidToken, TokenType, TokenVerifier, bearer_token
from adx.logging import CorrelationIdMiddleware
from adx.problems import http_exception_problem, problem, problem_for, validation_problem
from adx.readiness import ReadinessCheck, readiness_endpoint
from adx.request_metrics import RequestMetrics, RequestMetricsMiddleware
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from services.common.errors import UNREACHABLE_STORE_ERRORS, ServiceError, unreachable_store
from services.common.openapi import openapi_document

log = structlog.stdlib.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = 1024 * 1024
MAX_IDEMPOTENCY_KEY = 200
# What a client is told to wait before asking again when a store is unreachable.
RETRY_AFTER_SECONDS = 1


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as ``model``; bad input raises (-> 422 problem with field errors)."""
    body = await read_limited(request, MAX_JSON_BODY)  # BodyTooLarge -> 413
    return model.model_validate_json(body or b"{}")


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: absent, or 1-200 characters (else a 422)."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ServiceError(
            ErrorKind.VALIDATION,
            "invalid Idempotency-Key",
            fields={"Idempotency-Key": f"1 to {MAX_IDEMPOTENCY_KEY} characters"},
        )
    return key


def identity(request: Request) -> RequestContext:
    """The caller's verified identity (bearer access token), or 401."""
    verifier: TokenVerifier = request.app.state.verifier
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ServiceError(ErrorKind.AUTHENTICATION, "a bearer token is required")
    try:
        claims = verifier.verify(token, TokenType.ACCESS)
    except InvalidToken as error:
        raise ServiceError(ErrorKind.AUTHENTICATION, str(error)) from error
    correlation_id = request.scope.get("state", {}).get("correlation_id")
    return claims.context(correlation_id)


def json(
    model: BaseModel | Sequence[BaseModel] | dict[str, Any], status: int = 200
) -> JSONResponse:
    if isinstance(model, BaseModel):
        content: Any = model.model_dump(mode="json")
    elif isinstance(model, dict):
        content = model
    else:
        content = [item.model_dump(mode="json") for item in model]
    return JSONResponse(content, status_code=status)


def create_service_app(
    name: str,
    routes: Sequence[BaseRoute],
    *,
    verifier: TokenVerifier,
    readiness: dict[str, ReadinessCheck],
    state: dict[str, Any] | None = None,
) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": name})

    readyz = readiness_endpoint(readiness, {"service": name})

    async def on_service_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceError)
        if error.fields:
            fields = [{"field": f, "message": m} for f, m in error.fields.items()]
            return problem_for(error.kind, error.message, request=request, errors=fields)
        return problem_for(error.kind, error.message, request=request)

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ValidationError)
        return validation_problem(error, request)

    async def on_too_large(request: Request, error: Exception) -> Response:
        return problem(413, "Content too large", str(error), request=request)

    async def on_unexpected(request: Request, error: Exception) -> Response:
        if isinstance(error, UNREACHABLE_STORE_ERRORS):
            unavailable = unreachable_store(error)
            # The type only: a database error carries its statement and parameters.
            log.warning(
                "request.store_unavailable", path=request.url.path, error=type(error).__name__
            )
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return problem_for(
                unavailable.kind, unavailable.message, request=request, headers=headers
            )
        log.exception("request.failed", path=request.url.path)
        return problem_for(ErrorKind.INTERNAL, "internal error", request=request)

    document = openapi_document(f"ADX Core {name} service", routes)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    metrics = RequestMetrics("service")
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *routes,
        ],
        middleware=[
            Middleware(CorrelationIdMiddleware),
            Middleware(RequestMetricsMiddleware, metrics=metrics),
        ],
        exception_handlers={
            ServiceError: on_service_error,
            ValidationError: on_validation_error,
            BodyTooLarge: on_too_large,
            HTTPException: http_exception_problem,
            Exception: on_unexpected,
        },
    )
    app.state.verifier = verifier
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    return app
