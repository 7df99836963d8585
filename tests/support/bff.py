"""Running a BFF subgraph over real HTTP/WebSocket in a test, with real tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from websockets.typing import Subprotocol

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext
from graph.context import BffDependencies
from graph.runtime import Subgraph, close_dependencies, create_app, open_dependencies
from tests.support.http import serve_app
from workflow_client.operations import WorkflowOperations


def issue_token(settings: Settings, who: RequestContext) -> str:
    token, _ = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=who.user_id,
        tenant_id=who.tenant_id,
        session_id="test-session",
        token_type=TokenType.ACCESS,
        roles=list(who.roles),
    )
    return token


@asynccontextmanager
async def jwks_endpoint(settings: Settings) -> AsyncIterator[str]:
    """The JWKS of ``settings``' signing keys over real HTTP (what the auth service serves)."""

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(SigningKeys.from_settings(settings).jwks())

    async with serve_app(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as url:
        yield f"{url}/.well-known/jwks.json"


@asynccontextmanager
async def running_bff(
    subgraph: Subgraph,
    settings: Settings,
    *,
    client: Client | None = None,
    operations: WorkflowOperations | None = None,
) -> AsyncIterator[tuple[str, BffDependencies]]:
    async with jwks_endpoint(settings) as jwks_url:
        own = settings.model_copy(update={"jwks_url": jwks_url})
        deps = await open_dependencies(subgraph.name, own, client=client, operations=operations)
        try:
            async with serve_app(create_app(subgraph, deps)) as url:
                yield url, deps
        finally:
            await close_dependencies(deps)


async def graphql(
    url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body


async def subscribe_ws(
    url: str,
    query: str,
    variables: dict[str, Any],
    token: str | None,
    limit: int | None = None,
    extensions: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The ``next`` payloads of one graphql-transport-ws subscription (until complete,
    an error, or ``limit`` payloads); ``extensions``: sent with the subscription (a persisted
    document's id); ``token`` None: none sent."""
    received: list[dict[str, Any]] = []
    ws_url = url.replace("http://", "ws://") + "/graphql"
    params = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": params}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": query,
                        "variables": variables,
                        **({"extensions": extensions} if extensions else {}),
                    },
                }
            )
        )
        while limit is None or len(received) < limit:
            message = json.loads(await ws.recv())
            if message["type"] == "next":
                received.append(message["payload"])
            elif message["type"] in ("complete", "error"):
                if message["type"] == "error":
                    received.append({"errors": message["payload"]})
                break
    return received
