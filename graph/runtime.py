"""Running a BFF process: its long-lived dependencies and the ``adx bff NAME`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from dataclasses import dataclass

import httpx
import strawberry
import uvicorn
from starlette.applications import Starlette
from temporalio.client import Client

from adx.jwks import JwksVerifier
from adx.logging import configure_logging
from adx.settings import Settings, get_settings
from gateway_client import GatewayClient
from graph.app import create_bff_app
from graph.context import BffDependencies
from graph.metrics import BffMetrics
from graph.schema import build_schema
from subscriptions.hub import ProgressHub
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations

HELP = "run a BFF subgraph (auth 4001, tenant 4002, file 4003, user 4004, workflow 4005)"

# name -> module whose SUBGRAPH describes the BFF
BFFS = {
    "auth": "bffs.auth.subgraph",
    "user": "bffs.user.subgraph",
    "workflow": "bffs.workflow.subgraph",
    "tenant": "bffs.tenant.subgraph",
    "file": "bffs.file.subgraph",
}


@dataclass(frozen=True)
class Subgraph:
    """What a BFF module declares: its root types and whether it takes file uploads."""

    name: str
    query: type
    mutation: type | None = None
    subscription: type | None = None
    types: tuple[type, ...] = ()
    uploads: bool = False

    def schema(
        self, settings: Settings, metrics: BffMetrics | None = None
    ) -> strawberry.federation.Schema:
        return build_schema(
            query=self.query,
            mutation=self.mutation,
            subscription=self.subscription,
            types=self.types,
            production=settings.is_production,
            metrics=metrics,
        )


async def open_dependencies(
    name: str,
    settings: Settings,
    *,
    client: Client | None = None,
    operations: WorkflowOperations | None = None,
) -> BffDependencies:
    """``client`` or ``operations``: already connected ones (tests); otherwise one connects."""
    http = httpx.AsyncClient()
    operations = operations or WorkflowOperations(client or await connect(settings))
    metrics = BffMetrics(name)
    deps = BffDependencies(
        name=name,
        settings=settings,
        operations=operations,
        verifier=JwksVerifier.from_settings(settings, http),
        metrics=metrics,
        gateway=GatewayClient.from_settings(settings, registry=metrics.registry),
        hub=ProgressHub(operations),
        http=http,
    )
    return deps


async def close_dependencies(deps: BffDependencies) -> None:
    await deps.gateway.aclose()
    await deps.verifier.aclose()
    await deps.http.aclose()


def create_app(subgraph: Subgraph, deps: BffDependencies) -> Starlette:
    return create_bff_app(
        deps, subgraph.schema(deps.settings, deps.metrics), uploads=subgraph.uploads
    )


def load(name: str) -> Subgraph:
    subgraph: Subgraph = importlib.import_module(BFFS[name]).SUBGRAPH
    return subgraph


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BFFS), help="which BFF")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings)
    asyncio.run(serve(load(args.name), settings))
    return 0


async def serve(subgraph: Subgraph, settings: Settings) -> None:
    deps = await open_dependencies(subgraph.name, settings)
    config = uvicorn.Config(
        create_app(subgraph, deps),
        host=settings.host,
        port=settings.port(f"bff_{subgraph.name}"),
        log_config=None,
        server_header=False,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await close_dependencies(deps)
