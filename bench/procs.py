"""The benchmark's own processes: ``python -m bench.procs ROLE PORT``.

- ``plain``: the baseline endpoints (a plain Starlette JSON route and plain Strawberry, with and
  without parser/validation caches) and the JWKS of the run's signing keys (what the auth
  service publishes), on uvicorn like every server of the stack;
- ``bff``: the bench subgraph (``bench.graph.BENCH_SUBGRAPH``) on the product's BFF kit;
- ``worker``: a Temporal worker for the bench workflows (``bench.flows``).

The product's own processes (services, gateway, BFFs) run with their own ``adx`` commands.
Settings come from the environment (``ADX_*``), as for every process of the stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from adx.identity import SigningKeys
from adx.logging import configure_logging
from adx.settings import Settings, get_settings
from bench import flows, graph
from contracts.names import WORKFLOW_TASK_QUEUES
from gateway_client import GatewayClient
from graph.metrics import BffMetrics
from graph.runtime import Subgraph, close_dependencies, create_app, open_dependencies
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

REDIS_ENV = "ADX_BENCH_REDIS_URL"


def plain_app(settings: Settings) -> Starlette:
    constant = {"body": b"{}"}
    jwks = SigningKeys.from_settings(settings).jwks()

    async def configure(request: Request) -> Response:
        document = json.loads(await request.body())
        graph.CONSTANT_PROFILE.clear()
        graph.CONSTANT_PROFILE.update(document["profile"])
        constant["body"] = document["body"].encode()
        return JSONResponse({"ok": True})

    async def plain_json(_request: Request) -> Response:
        return Response(constant["body"], media_type="application/json")

    async def jwks_endpoint(_request: Request) -> Response:
        return JSONResponse(jwks)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    cached: GraphQL[Any, Any] = GraphQL(graph.plain_schema(caches=True), graphql_ide=None)
    uncached: GraphQL[Any, Any] = GraphQL(graph.plain_schema(caches=False), graphql_ide=None)
    # The product's schema kit (federation, limits, caches, masking, metrics) on the same
    # constant resolver: no JWT, no context, no gateway client.
    kit_schema = Subgraph(name="kit", query=graph.PlainQuery).schema(settings, BffMetrics("kit"))
    kit: GraphQL[Any, Any] = GraphQL(kit_schema, graphql_ide=None)
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks_endpoint, methods=["GET"]),
            Route("/configure", configure, methods=["POST"]),
            Route("/json", plain_json, methods=["GET", "POST"]),
            Route("/graphql", cached, methods=["POST"]),
            Route("/graphql-nocache", uncached, methods=["POST"]),
            Route("/graphql-kit", kit, methods=["POST"]),
        ]
    )


async def serve_bff(settings: Settings, port: int) -> None:
    client = await connect(settings)
    queues = {str(k): str(v) for k, v in WORKFLOW_TASK_QUEUES.items()}
    queues.update({flows.NOOP: flows.BENCH_TASK_QUEUE, flows.PROGRESS: flows.BENCH_TASK_QUEUE})
    operations = WorkflowOperations(client, task_queues=queues)
    deps = await open_dependencies(graph.BENCH_SUBGRAPH.name, settings, operations=operations)
    redis_url = _env(REDIS_ENV)
    if redis_url:
        redis_gateway = GatewayClient.from_settings(
            settings.model_copy(update={"redis_url": redis_url}), registry=CollectorRegistry()
        )
        deps.components.provide(graph.RedisGateway(redis_gateway))
    config = uvicorn.Config(
        create_app(graph.BENCH_SUBGRAPH, deps),
        host=settings.host,
        port=port,
        log_config=None,
        server_header=False,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        extra = deps.components.find(graph.RedisGateway)
        if extra is not None:
            await extra.client.aclose()
        await close_dependencies(deps)


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    worker = create_worker(
        client,
        task_queue=flows.BENCH_TASK_QUEUE,
        workflows=flows.WORKFLOWS,
        activities=flows.ACTIVITIES,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        await stop.wait()


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def main(argv: list[str]) -> int:
    role, port = argv[0], int(argv[1]) if len(argv) > 1 else 0
    settings = get_settings()
    configure_logging(settings)
    if role == "plain":
        uvicorn.run(
            plain_app(settings),
            host=settings.host,
            port=port,
            log_config=None,
            server_header=False,
        )
    elif role == "bff":
        asyncio.run(serve_bff(settings, port))
    elif role == "worker":
        asyncio.run(run_worker(settings))
    else:
        print(f"unknown role {role!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
