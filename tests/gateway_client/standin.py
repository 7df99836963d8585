"""A stand-in gateway: a real Starlette app served over loopback HTTP that counts its calls,
records the headers it receives, and fails, stalls or answers problems on demand."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.context import RequestContext
from gateway_client import Cache, GatewayClient

PROBLEM_JSON = "application/problem+json"

# The gateway's problem documents (adx.problems shapes), by status.
PROBLEMS: dict[int, tuple[dict[str, Any], dict[str, str]]] = {
    400: (
        {
            "type": "urn:adx:problem:ValidationError",
            "title": "Invalid request",
            "status": 400,
            "detail": "the body is not JSON",
        },
        {},
    ),
    401: (
        {
            "type": "urn:adx:problem:AuthenticationError",
            "title": "Authentication required",
            "status": 401,
            "detail": "the token has expired",
        },
        {},
    ),
    403: (
        {
            "type": "urn:adx:problem:AuthorizationError",
            "title": "Not allowed",
            "status": 403,
            "detail": "admins only",
        },
        {},
    ),
    404: (
        {
            "type": "urn:adx:problem:NotFoundError",
            "title": "Not found",
            "status": 404,
            "detail": "no user u-9",
            "correlation_id": "corr-404",
        },
        {},
    ),
    409: (
        {
            "type": "urn:adx:problem:ConflictError",
            "title": "Conflict",
            "status": 409,
            "detail": "the email is taken",
        },
        {},
    ),
    422: (
        {
            "type": "urn:adx:problem:ValidationError",
            "title": "Invalid request",
            "status": 422,
            "detail": "the request has invalid fields",
            "errors": [
                {"field": "email", "message": "value is not a valid email address"},
                {"field": "display_name", "message": "String should have at most 80 characters"},
            ],
        },
        {},
    ),
    429: (
        {"type": "about:blank", "title": "Too many requests", "status": 429, "detail": "slow down"},
        {"Retry-After": "7"},
    ),
    500: (
        {
            "type": "urn:adx:problem:InternalError",
            "title": "Internal error",
            "status": 500,
            "detail": "internal error",
        },
        {},
    ),
    503: (
        {
            "type": "about:blank",
            "title": "Service unavailable",
            "status": 503,
            "detail": "the user service is unavailable",
        },
        {"Retry-After": "30"},
    ),
}


@dataclass
class StandInGateway:
    url: str = ""
    calls: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    version: int = 0  # bumped by every profile mutation
    failures_left: int = 0  # how many more times /api/flaky/* answers 503
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends stalled requests

    def count(self, request: Request) -> None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        self.headers.append(dict(request.headers))

    def called(self, method: str, path: str) -> int:
        return self.calls[f"{method} {path}"]

    async def profile(self, request: Request) -> Response:
        self.count(request)
        return JSONResponse(
            {
                "version": self.version,
                "served": sum(self.calls.values()),
                "params": dict(request.query_params),
            }
        )

    async def update_profile(self, request: Request) -> Response:
        self.count(request)
        self.bodies.append(await request.json())
        self.version += 1
        return JSONResponse({"version": self.version})

    async def reject_profile(self, request: Request) -> Response:
        self.count(request)
        body, headers = PROBLEMS[422]
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON, headers=headers)

    async def flaky(self, request: Request) -> Response:
        self.count(request)
        if self.failures_left > 0:
            self.failures_left -= 1
            return JSONResponse(
                {"type": "about:blank", "title": "Bad gateway", "status": 503},
                status_code=503,
                media_type=PROBLEM_JSON,
            )
        return JSONResponse({"ok": True, "method": request.method})

    async def down(self, request: Request) -> Response:
        self.count(request)
        return JSONResponse(
            {"type": "about:blank", "title": "Service unavailable", "status": 503},
            status_code=503,
            media_type=PROBLEM_JSON,
        )

    async def slow(self, request: Request) -> Response:
        self.count(request)
        await self.release.wait()
        return JSONResponse({"late": True})

    async def gated(self, request: Request) -> Response:
        self.count(request)
        version = self.version  # read before the mutation lands
        await self.gate.wait()
        return JSONResponse({"version": version})

    async def problem(self, request: Request) -> Response:
        self.count(request)
        status = int(request.path_params["status"])
        body, headers = PROBLEMS[status]
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)

    async def html_error(self, request: Request) -> Response:
        self.count(request)
        return Response(
            "<html>Traceback (most recent call last): secret internals</html>",
            status_code=500,
            media_type="text/html",
        )

    async def not_json(self, request: Request) -> Response:
        self.count(request)
        return Response("plain text", media_type="text/plain")

    async def no_store(self, request: Request) -> Response:
        self.count(request)
        return JSONResponse({"fresh": True}, headers={"Cache-Control": "no-store"})

    async def echo(self, request: Request) -> Response:
        self.count(request)
        body = await request.body()
        return JSONResponse({"body": json.loads(body) if body else None})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/user/profile", self.profile, methods=["GET"]),
                Route("/api/user/profile", self.update_profile, methods=["PUT"]),
                Route("/api/user/profile/invalid", self.reject_profile, methods=["PUT"]),
                Route("/api/flaky/item", self.flaky, methods=["GET", "POST"]),
                Route("/api/down/item", self.down, methods=["GET", "POST"]),
                Route("/api/slow/item", self.slow, methods=["GET", "POST"]),
                Route("/api/gated/item", self.gated, methods=["GET"]),
                Route("/api/problem/{status:int}", self.problem, methods=["GET", "POST"]),
                Route("/api/broken/html", self.html_error, methods=["GET"]),
                Route("/api/broken/text", self.not_json, methods=["GET"]),
                Route("/api/user/no-store", self.no_store, methods=["GET"]),
                Route("/api/echo/item", self.echo, methods=["POST", "DELETE"]),
            ]
        )


class LogRecorder:
    """Receives the client's and the cache's log events (structlog's method signature)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, *args: Any, **kw: Any) -> None:
        self.events.append(("info", event, kw))

    def warning(self, event: str, *args: Any, **kw: Any) -> None:
        self.events.append(("warning", event, kw))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [kw for _, name, kw in self.events if name == event]


def make_client(
    gateway: StandInGateway,
    registry: CollectorRegistry,
    logs: LogRecorder,
    cache: Cache | None = None,
    *,
    retries: int = 2,
    timeout: float = 5.0,
    breaker_threshold: int = 5,
    breaker_cooldown_seconds: float = 10.0,
) -> GatewayClient:
    """A client of the stand-in with near-zero backoff (the waits are not what is tested)."""
    return GatewayClient(
        gateway.url,
        cache=cache,
        registry=registry,
        logger=logs,
        retries=retries,
        timeout=timeout,
        backoff_seconds=0.001,
        max_backoff_seconds=0.05,
        breaker_threshold=breaker_threshold,
        breaker_cooldown_seconds=breaker_cooldown_seconds,
    )


ALICE = RequestContext(
    user_id="alice", tenant_id="acme", roles=("member",), correlation_id="corr-alice-1"
)
BOB = RequestContext(user_id="bob", tenant_id="acme", roles=("member",), correlation_id="c-bob")
# Same user id as Alice, another tenant.
ALICE_GLOBEX = RequestContext(
    user_id="alice", tenant_id="globex", roles=("member",), correlation_id="c-globex"
)
