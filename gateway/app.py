"""The gateway app: ``create_gateway_app(settings)`` and the ``adx gateway`` command."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from adx.jwks import JwksVerifier
from adx.logging import CorrelationIdMiddleware, configure_logging, get_logger
from adx.problems import http_exception_problem, problem_for
from adx.readiness import readiness_endpoint
from adx.request_metrics import RequestMetricsMiddleware
from adx.settings import Settings, get_settings
from contracts.errors import ErrorKind
from gateway import workflows
from gateway.guard import GatewayGuard
from gateway.metrics import GatewayMetrics
from gateway.openapi import build_openapi
from gateway.proxy import proxy
from gateway.ratelimit import RateLimits
from gateway.service_docs import ServiceDocuments, merge
from gateway.stream import stream
from gateway.upstreams import Upstreams
from subscriptions.hub import ProgressHub
from workflow_client.connect import connect, ensure_namespace
from workflow_client.operations import WorkflowOperations

HELP = "run the API gateway"
log = get_logger(__name__)


def create_gateway_app(settings: Settings, *, client: Client | None = None) -> Starlette:
    """``client``: an already connected Temporal client (tests); otherwise one is connected
    at start-up."""
    metrics = GatewayMetrics()
    http = httpx.AsyncClient(follow_redirects=False)
    upstreams = Upstreams(settings, http, on_breaker_change=metrics.breaker_changed)
    verifier = JwksVerifier.from_settings(settings, http)
    openapi = build_openapi()
    service_documents = ServiceDocuments(upstreams, http)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        temporal = client or await connect(settings)
        app.state.operations = WorkflowOperations(temporal)
        app.state.hub = ProgressHub(app.state.operations)
        upstreams.start_health_checks()
        log.info("gateway.started", url=settings.url("gateway"))
        try:
            yield
        finally:
            await upstreams.stop_health_checks()
            await verifier.aclose()
            await http.aclose()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def temporal_ready() -> None:
        await ensure_namespace(app.state.operations.client)

    readyz = readiness_endpoint({"temporal": temporal_ready}, {})

    async def openapi_endpoint(_request: Request) -> Response:
        return JSONResponse(merge(openapi, await service_documents.current()))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.exception("request.failed", path=request.url.path)
        return problem_for(ErrorKind.INTERNAL, "internal error", request=request)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/api/workflows", workflows.list_operations, methods=["GET"]),
            Route("/api/workflows/{id}/status", workflows.status, methods=["GET"]),
            Route("/api/workflows/{id}/result", workflows.result, methods=["GET"]),
            Route("/api/workflows/{id}/cancel", workflows.cancel, methods=["POST"]),
            Route("/api/workflows/{id}/retry", workflows.retry, methods=["POST"]),
            Route("/api/workflows/{id}/stream", stream, methods=["GET"]),
            Route("/api/workflows/{type}", workflows.start, methods=["POST"]),
            Route("/api/{service}/{path:path}", proxy, methods=methods),
        ],
        middleware=[
            Middleware(CorrelationIdMiddleware),
            Middleware(RequestMetricsMiddleware, metrics=metrics),
            Middleware(
                GatewayGuard, verifier=verifier, limits=RateLimits(settings), metrics=metrics
            ),
        ],
        exception_handlers={HTTPException: http_exception_problem, Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.http = http
    app.state.upstreams = upstreams
    app.state.verifier = verifier
    app.state.metrics = metrics
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # host and port come from settings (ADX_HOST, ADX_PORTS / ADX_PORT_OFFSET)


def run(args: argparse.Namespace) -> int:
    del args
    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        create_gateway_app(settings),
        host=settings.host,
        port=settings.port("gateway"),
        log_config=None,
        server_header=False,
    )
    return 0
