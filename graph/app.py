"""The Starlette app of a BFF subgraph: ``/graphql`` (HTTP, WebSocket and SSE; GraphiQL only in
dev), ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import strawberry
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from adx.logging import CorrelationIdMiddleware
from adx.readiness import ReadinessCheck, readiness_endpoint
from adx.settings import Environment
from graph.context import BffDependencies, GraphContext
from graph.errors import format_client_error
from workflow_client.connect import ensure_namespace


class BffGraphQL(GraphQL[GraphContext, None]):
    def __init__(
        self, schema: strawberry.federation.Schema, deps: BffDependencies, **options: Any
    ) -> None:
        super().__init__(schema, **options)
        self.deps = deps

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> GraphContext:
        return GraphContext(self.deps, request, response)

    async def process_result(
        self, request: Request | WebSocket, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Errors raised before execution (parse errors such as the token limit) skip the
        # schema extensions: give them their code here.
        for error in result.errors or []:
            format_client_error(error)
        return process_result(result)

    # No on_ws_connect check: a WebSocket is accepted whatever its token, and each operation
    # that needs the caller answers UNAUTHENTICATED. Refusing the connection instead (4403)
    # makes the router retry it and end with an error that has neither message nor code.


def create_bff_app(
    deps: BffDependencies,
    schema: strawberry.federation.Schema,
    *,
    uploads: bool = False,
    readiness: dict[str, ReadinessCheck] | None = None,
    lifespan: Callable[[Starlette], Any] | None = None,
) -> Starlette:
    dev = deps.settings.environment is Environment.DEV
    graphql = BffGraphQL(
        schema,
        deps,
        graphql_ide="graphiql" if dev else None,
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=10),
        multipart_uploads_enabled=uploads,
    )

    async def temporal_ready() -> None:
        await ensure_namespace(deps.operations.client)

    checks = {"temporal": temporal_ready, **(readiness or {})}

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "bff": deps.name})

    readyz = readiness_endpoint(checks, {"bff": deps.name})

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def default_lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[Middleware(CorrelationIdMiddleware)],
        lifespan=lifespan or default_lifespan,
    )
    app.state.deps = deps
    return app
