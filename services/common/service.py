"""One codebase, two modes: ``adx service NAME server`` serves the HTTP API,
``adx service NAME worker`` runs the service's activities and workflows on its task queue.

Each service describes itself with a :class:`ServiceDefinition` in ``services/<name>/service.py``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from temporalio.client import Client
from temporalio.worker import Worker

from adx.components import Components
from adx.identity import TokenVerifier
from adx.readiness import ReadinessCheck, readiness_endpoint
from adx.request_metrics import RequestMetrics
from adx.settings import Settings
from contracts.names import TaskQueue
from services.common.db import Database
from services.common.dev_seed import seeding_enabled
from services.common.http import create_service_app
from workflow_client.connect import connect, ensure_namespace
from workflow_client.operations import WorkflowOperations
from workflow_client.versioning import deployment_config
from workflow_client.worker import create_worker

log = structlog.stdlib.get_logger(__name__)


@dataclass
class ServiceRuntime:
    """What a running service has at hand, in either mode."""

    name: str
    settings: Settings
    db: Database
    client: Client
    verifier: TokenVerifier
    operations: WorkflowOperations = field(init=False)
    # The service's own parts (e.g. AuthComponents), which this module cannot name.
    components: Components = field(default_factory=Components)

    def __post_init__(self) -> None:
        self.operations = WorkflowOperations(self.client)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    task_queue: TaskQueue
    migrations: Path
    # The HTTP routes of server mode.
    routes: Callable[[ServiceRuntime], Sequence[BaseRoute]]
    workflows: Sequence[type]
    # The activities of worker mode (bound methods of objects holding the store).
    activities: Callable[[ServiceRuntime], Sequence[Callable[..., Any]]]
    # Runs once per process after migrations, in both modes.
    on_start: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    # The demo data (services/common/dev_seed.py): after on_start outside production with
    # dev_seed on, and whenever `adx seed` asks. Creates what is missing, changes nothing else.
    seed: Callable[[ServiceRuntime], Awaitable[None]] | None = None


async def open_runtime(
    definition: ServiceDefinition, settings: Settings, *, client: Client | None = None
) -> ServiceRuntime:
    db = Database.from_settings(settings, definition.name)
    await db.migrate(definition.migrations)
    runtime = ServiceRuntime(
        name=definition.name,
        settings=settings,
        db=db,
        client=client or await connect(settings),
        verifier=TokenVerifier.from_settings(settings),
    )
    if definition.on_start is not None:
        await definition.on_start(runtime)
    if definition.seed is not None and seeding_enabled(settings):
        await definition.seed(runtime)
    return runtime


def readiness_checks(runtime: ServiceRuntime) -> dict[str, ReadinessCheck]:
    """What either mode needs to work: its database and its Temporal namespace."""

    async def temporal_ready() -> None:
        await ensure_namespace(runtime.client)

    return {"database": runtime.db.ping, "temporal": temporal_ready}


def build_app(definition: ServiceDefinition, runtime: ServiceRuntime) -> Starlette:
    return create_service_app(
        definition.name,
        definition.routes(runtime),
        verifier=runtime.verifier,
        readiness=readiness_checks(runtime),
        state={"runtime": runtime},
    )


async def serve(definition: ServiceDefinition, settings: Settings) -> None:
    runtime = await open_runtime(definition, settings)
    app = build_app(definition, runtime)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port(definition.name),
        log_config=None,
        server_header=False,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await runtime.db.dispose()


async def work(definition: ServiceDefinition, settings: Settings) -> None:
    runtime = await open_runtime(definition, settings)
    # Set (settings.worker_build_id): this worker is one build of the service's deployment.
    deployment = deployment_config(settings, definition.name)
    worker = create_worker(
        runtime.client,
        task_queue=definition.task_queue.value,
        workflows=definition.workflows,
        activities=definition.activities(runtime),
        deployment_config=deployment,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "worker.started",
        service=definition.name,
        task_queue=definition.task_queue.value,
        deployment=deployment.version.deployment_name if deployment else None,
        build_id=deployment.version.build_id if deployment else None,
    )
    # Leaving the worker's block drains it: no new tasks are polled, running activities get the
    # grace period to finish, then are cancelled (and retried by another worker). The health
    # server outlives it, so a probe during the drain sees "alive, not ready".
    async with worker_health(definition, runtime, worker, stop), worker:
        await stop.wait()
        log.info(
            "worker.draining",
            service=definition.name,
            grace_seconds=settings.worker_shutdown_grace_seconds,
        )
    log.info("worker.stopped", service=definition.name)
    await runtime.db.dispose()


class _HealthServer(uvicorn.Server):
    """uvicorn without its signal handling: the worker owns SIGTERM (it drains first)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def worker_health(
    definition: ServiceDefinition, runtime: ServiceRuntime, worker: Worker, stopping: asyncio.Event
) -> AsyncIterator[None]:
    """``/healthz``, ``/readyz`` and ``/metrics`` of worker mode on ``worker_health_port``
    (containers' probes), for the whole life of the worker, its drain included; nothing when
    unset."""
    port = runtime.settings.worker_health_port
    if port is None:
        yield
        return
    name = f"{definition.name} worker"

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": name})

    async def polling() -> None:
        # A draining worker takes no new tasks: it is alive, not ready.
        if stopping.is_set() or not worker.is_running:
            raise RuntimeError("the worker is not polling")

    checks = {**readiness_checks(runtime), "worker": polling}
    metrics = RequestMetrics("worker")
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readiness_endpoint(checks, {"service": name}), methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
        ]
    )
    config = uvicorn.Config(
        app, host=runtime.settings.host, port=port, log_config=None, server_header=False
    )
    server = _HealthServer(config)
    serving = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await serving
