"""The per-request GraphQL context: who is calling (from the JWT on the HTTP
``Authorization`` header, or the WebSocket ``connection_params``), the process-wide
dependencies, and per-request DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiodataloader import DataLoader
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from adx.components import Components
from adx.identity import InvalidToken, bearer_token
from adx.jwks import JwksVerifier
from adx.settings import Settings
from contracts.context import RequestContext
from gateway_client import GatewayClient
from graph.errors import ClientError, unauthenticated
from graph.metrics import BffMetrics
from subscriptions.hub import ProgressHub
from workflow_client.operations import WorkflowOperations

BatchLoad = Callable[[list[Any]], Coroutine[Any, Any, list[Any]]]


@dataclass
class BffDependencies:
    """What a BFF process holds for its whole life."""

    name: str
    settings: Settings
    operations: WorkflowOperations
    verifier: JwksVerifier
    metrics: BffMetrics
    gateway: GatewayClient
    hub: ProgressHub
    # Plain HTTP (JWKS, uploads streamed to the gateway); closed by close_dependencies.
    http: httpx.AsyncClient
    # What resolvers left running (graph.tasks): held so no task is garbage-collected.
    background_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # A BFF's own parts, which this module cannot name (e.g. the user BFF's DashboardConfig).
    components: Components = field(default_factory=Components)


class GraphContext:
    # Strawberry sets this after the WebSocket ``connection_init``.
    connection_params: dict[str, Any] | None = None

    def __init__(
        self,
        deps: BffDependencies,
        request: Request | WebSocket,
        response: Response | WebSocket | None,
    ) -> None:
        self.deps = deps
        self.request = request
        self.response = response
        self._identity: RequestContext | None = None
        self._loaders: dict[str, DataLoader[Any, Any]] = {}

    @property
    def is_websocket(self) -> bool:
        return isinstance(self.request, WebSocket)

    @property
    def correlation_id(self) -> str | None:
        cid: str | None = self.request.scope.get("state", {}).get("correlation_id")
        return cid

    @property
    def token(self) -> str | None:
        """The caller's bearer token (forwarded to the gateway, never logged)."""
        if self.connection_params is not None:
            raw = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization"
            )
            return bearer_token(raw) if isinstance(raw, str) else None
        return bearer_token(self.request.headers.get("authorization"))

    async def identity(self) -> RequestContext | None:
        """The verified caller, or None without a token; an invalid token is an error."""
        if self._identity is not None:
            return self._identity
        token = self.token
        if token is None:
            return None
        try:
            claims = await self.deps.verifier.verify(token)
        except InvalidToken as error:
            raise unauthenticated(str(error)) from error
        self._identity = claims.context(self.correlation_id)
        return self._identity

    async def require_identity(self) -> RequestContext:
        identity = await self.identity()
        if identity is None:
            raise unauthenticated()
        return identity

    def loader(self, name: str, batch_load: BatchLoad) -> DataLoader[Any, Any]:
        """The request's DataLoader for ``name`` (created on first use, inside the running
        loop). Over a WebSocket the context lives as long as the connection, so loaders do
        not cache there: a later event must not see stale data."""
        if name not in self._loaders:
            self._loaders[name] = DataLoader(batch_load, cache=not self.is_websocket)
        return self._loaders[name]

    def loader_of_each(
        self, name: str, fetch: Callable[[Any], Awaitable[Any]]
    ) -> DataLoader[Any, Any]:
        """A loader whose batch fetches its keys in parallel, each on its own (each through
        the gateway client's cache): a key's ClientError is raised for that key alone."""

        async def batch(keys: list[Any]) -> list[Any]:
            async def one(key: Any) -> Any:
                try:
                    return await fetch(key)
                except ClientError as error:
                    return error  # the loader raises it for this key

            return list(await asyncio.gather(*(one(key) for key in keys)))

        return self.loader(name, batch)
