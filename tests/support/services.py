"""A service running in both modes inside the test process: its worker polls the real
Temporal dev server and its HTTP API answers over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.client import Client

from adx.settings import Settings
from services.common.service import ServiceDefinition, ServiceRuntime, build_app, open_runtime
from tests.support.http import serve_app
from workflow_client.worker import create_worker


@dataclass
class RunningService:
    runtime: ServiceRuntime
    url: str


@asynccontextmanager
async def running_service(
    definition: ServiceDefinition,
    settings: Settings,
    *,
    client: Client | None = None,
    worker: bool = True,
    server: bool = True,
) -> AsyncIterator[RunningService]:
    runtime = await open_runtime(definition, settings, client=client)
    try:
        async with (
            _maybe_worker(definition, runtime, worker),
            _maybe_server(definition, runtime, server) as url,
        ):
            yield RunningService(runtime=runtime, url=url)
    finally:
        await runtime.db.dispose()


@asynccontextmanager
async def _maybe_worker(
    definition: ServiceDefinition, runtime: ServiceRuntime, enabled: bool
) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    worker = create_worker(
        runtime.client,
        task_queue=definition.task_queue.value,
        workflows=definition.workflows,
        activities=definition.activities(runtime),
    )
    async with worker:
        yield


@asynccontextmanager
async def _maybe_server(
    definition: ServiceDefinition, runtime: ServiceRuntime, enabled: bool
) -> AsyncIterator[str]:
    if not enabled:
        yield ""
        return
    async with serve_app(build_app(definition, runtime)) as url:
        yield url
