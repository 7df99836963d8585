"""Real stacks for the tenant and file BFF tests: services (server + worker) on the real
Temporal dev server, the gateway in front of them over real HTTP, and the BFF talking to the
gateway with a Redis cache. Tokens are verified through the services' JWKS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client

from adx.settings import Settings
from contracts.context import RequestContext
from gateway.app import create_gateway_app
from graph.context import BffDependencies
from graph.runtime import Subgraph
from services.common.service import ServiceDefinition, ServiceRuntime
from tests.support.bff import running_bff
from tests.support.http import serve_app
from tests.support.services import running_service


def gateway_calls(deps: BffDependencies) -> float:
    """Every request the BFF's gateway client has sent so far (any method, any outcome)."""
    total = 0.0
    for metric in deps.metrics.registry.collect():
        if metric.name == "bff_gateway_requests":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


@asynccontextmanager
async def running_services(
    definitions: Mapping[str, ServiceDefinition], settings: Settings, client: Client
) -> AsyncIterator[dict[str, tuple[ServiceRuntime, str]]]:
    """Each service's runtime (one database), worker and HTTP API; name -> (runtime, url)."""
    running: dict[str, tuple[ServiceRuntime, str]] = {}
    async with AsyncExitStack() as stack:
        for name, definition in definitions.items():
            service = await stack.enter_async_context(
                running_service(definition, settings, client=client)
            )
            running[name] = (service.runtime, service.url)
        yield running


@asynccontextmanager
async def running_gateway(
    settings: Settings, client: Client, upstreams: Mapping[str, str], jwks_url: str
) -> AsyncIterator[str]:
    gateway_settings = settings.model_copy(
        update={
            "jwks_url": jwks_url,
            "gateway_upstreams": {name: [url] for name, url in upstreams.items()},
            "gateway_rate_limit_user": "100000/minute",
            "gateway_rate_limit_tenant": "100000/minute",
        }
    )
    async with serve_app(create_gateway_app(gateway_settings, client=client), lifespan=True) as url:
        yield url


@asynccontextmanager
async def running_bff_on(
    subgraph: Subgraph, settings: Settings, client: Client, gateway_url: str, redis_url: str
) -> AsyncIterator[tuple[str, BffDependencies]]:
    port = int(gateway_url.rsplit(":", 1)[1])
    bff_settings = settings.model_copy(
        update={
            "host": "127.0.0.1",
            "ports": {**settings.ports, "gateway": port},
            "redis_url": redis_url,
        }
    )
    async with running_bff(subgraph, bff_settings, client=client) as running:
        yield running


async def wait_result(
    deps: BffDependencies, who: RequestContext, operation_id: str, result_type: Any = None
) -> Any:
    async with asyncio.timeout(90):
        return await deps.operations.result(who, operation_id, result_type=result_type)


async def upload(
    url: str,
    token: str | None,
    data: bytes,
    name: str,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    """``uploadFile`` as a GraphQL multipart request (the spec's operations + map + file)."""
    operations = {
        "query": "mutation($file: Upload!, $name: String) { uploadFile(file: $file, name: $name)"
        " { id } }",
        "variables": {"file": None, "name": name},
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(
            f"{url}/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.file"]}),
            },
            files={"0": (name, data, content_type)},
            headers=headers,
        )
    body: dict[str, Any] = response.json()
    return body
