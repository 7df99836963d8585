"""The shared GraphQL kit on a small schema served over real HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry
import structlog
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.extensions.validation_cache import _get_validate_cache
from strawberry.types import Info
from websockets.typing import Subprotocol

from adx.identity import SigningKeys, TokenType
from adx.jwks import JwksVerifier
from adx.settings import Environment, Settings
from gateway_client import GatewayClient
from graph.app import create_bff_app
from graph.context import BffDependencies, GraphContext
from graph.errors import ClientError, ErrorCode
from graph.metrics import BffMetrics
from graph.permissions import IsAuthenticated
from graph.schema import VALIDATION_CACHE_SIZE, build_schema
from subscriptions.hub import ProgressHub
from tests.support.http import serve_app
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations

BATCHES: list[list[str]] = []


async def load_names(keys: list[str]) -> list[str]:
    BATCHES.append(list(keys))
    return [f"name-{key}" for key in keys]


@strawberry.type
class Item:
    id: strawberry.ID

    @strawberry.field
    async def name(self, info: Info[GraphContext, Any]) -> str:
        name: str = await info.context.loader("names", load_names).load(str(self.id))
        return name

    @strawberry.field
    def child(self) -> Item:
        return Item(id=self.id)


@strawberry.type
class Query:
    @strawberry.field
    def public(self) -> str:
        return "hello"

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def whoami(self, info: Info[GraphContext, Any]) -> str:
        identity = await info.context.require_identity()
        return f"{identity.user_id}@{identity.tenant_id}"

    @strawberry.field
    def items(self, count: int) -> list[Item]:
        return [Item(id=strawberry.ID(str(i))) for i in range(count)]

    @strawberry.field
    def refused(self) -> str:
        raise ClientError(ErrorCode.CONFLICT, "that conflicts")

    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("database password=hunter2 at /srv/secret.py line 3")


@strawberry.type
class Subscription:
    @strawberry.subscription  # the caller is checked in the stream, as the BFFs do
    async def ticks(self, info: Info[GraphContext, Any], count: int) -> AsyncGenerator[str, None]:
        identity = await info.context.require_identity()
        for i in range(count):
            yield f"{identity.user_id}:{i}"
            await asyncio.sleep(0)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, SigningKeys]:
    settings = Settings(environment=Environment.TEST, data_dir=tmp_path_factory.mktemp("kit"))
    return settings, SigningKeys.from_settings(settings)


@pytest.fixture(scope="module")
async def jwks_url(keys: tuple[Settings, SigningKeys]) -> AsyncIterator[str]:
    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(keys[1].jwks())

    async with serve_app(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as url:
        yield f"{url}/.well-known/jwks.json"


def token(keys: tuple[Settings, SigningKeys], user: str = "alice") -> str:
    settings, signing = keys
    value, _ = signing.issue(
        settings,
        user_id=user,
        tenant_id="acme",
        session_id="s1",
        token_type=TokenType.ACCESS,
        roles=["member"],
    )
    return value


@pytest.fixture(scope="module")
async def bff(
    keys: tuple[Settings, SigningKeys], jwks_url: str, settings: Settings
) -> AsyncIterator[tuple[str, BffMetrics]]:
    own_settings, _ = keys
    http = httpx.AsyncClient()
    metrics = BffMetrics("kit")
    operations = WorkflowOperations(await connect(settings))
    # The kit's resolvers never call the gateway; the client is there because every BFF has one.
    gateway = GatewayClient(own_settings.url("gateway"), http=http, registry=metrics.registry)
    deps = BffDependencies(
        name="kit",
        settings=own_settings.model_copy(update={"environment": Environment.DEV}),
        operations=operations,
        verifier=JwksVerifier(
            jwks_url, issuer=own_settings.jwt_issuer, audience=own_settings.jwt_audience, http=http
        ),
        metrics=metrics,
        gateway=gateway,
        hub=ProgressHub(operations),
        http=http,
    )
    schema = build_schema(query=Query, subscription=Subscription, metrics=metrics)
    async with serve_app(create_bff_app(deps, schema)) as url:
        yield url, metrics
    await gateway.aclose()
    await http.aclose()


async def gql(url: str, query: str, auth: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/graphql", json={"query": query}, headers=headers)
    body: dict[str, Any] = response.json()
    return body


async def test_unauthenticated_gets_the_code(bff: tuple[str, BffMetrics]) -> None:
    body = await gql(bff[0], "{ whoami }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    bad = await gql(bff[0], "{ whoami }", auth="not-a-jwt")
    assert bad["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_identity_comes_from_the_verified_token(
    bff: tuple[str, BffMetrics], keys: tuple[Settings, SigningKeys]
) -> None:
    body = await gql(bff[0], "{ whoami public }", auth=token(keys))
    assert body["data"] == {"whoami": "alice@acme", "public": "hello"}


async def test_client_errors_keep_their_code_and_internal_errors_are_masked(
    bff: tuple[str, BffMetrics],
) -> None:
    refused = await gql(bff[0], "{ refused }")
    assert refused["errors"][0]["message"] == "that conflicts"
    assert refused["errors"][0]["extensions"]["code"] == "CONFLICT"
    broken = await gql(bff[0], "{ broken }")
    error = broken["errors"][0]
    assert error["message"] == "internal error"
    assert error["extensions"] == {"code": "INTERNAL"}
    assert "hunter2" not in json.dumps(broken)


async def test_query_limits_reject_abusive_queries(bff: tuple[str, BffMetrics]) -> None:
    deep = "{ items(count: 1) { " + "child { " * 12 + "id" + " }" * 12 + " } }"
    body = await gql(bff[0], deep)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "depth" in body["errors"][0]["message"]
    aliases = "{ " + " ".join(f"a{i}: public" for i in range(20)) + " }"
    body = await gql(bff[0], aliases)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    tokens = "{ " + " ".join("public" for _ in range(2100)) + " }"
    body = await gql(bff[0], tokens)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_repeated_query_is_validated_once(bff: tuple[str, BffMetrics]) -> None:
    """The validation cache holds the limits too: a query seen before is neither validated
    again nor let past them."""
    cached: Any = _get_validate_cache(VALIDATION_CACHE_SIZE)  # an lru_cache wrapper
    query = "{ items(count: 2) { id child { id } } }"
    assert "errors" not in await gql(bff[0], query)
    before = cached.cache_info()
    for _ in range(3):
        assert (await gql(bff[0], query))["data"]["items"][1]["child"]["id"] == "1"
    after = cached.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)
    deep = "{ items(count: 1) { " + "child { " * 12 + "id" + " }" * 12 + " } }"
    for _ in range(2):
        assert "depth" in (await gql(bff[0], deep))["errors"][0]["message"]


async def test_dataloader_batches_n_entities_into_one_call(bff: tuple[str, BffMetrics]) -> None:
    BATCHES.clear()
    body = await gql(bff[0], "{ items(count: 25) { id name child { name } } }")
    assert len(body["data"]["items"]) == 25
    assert body["data"]["items"][3]["name"] == "name-3"
    assert len(BATCHES) == 1  # 50 loads, one batch (the per-request loader also caches)
    assert sorted(BATCHES[0], key=int) == [str(i) for i in range(25)]


async def test_subscription_over_websocket_authenticates_with_connection_params(
    bff: tuple[str, BffMetrics], keys: tuple[Settings, SigningKeys]
) -> None:
    ws_url = bff[0].replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {token(keys, 'bob')}"},
                }
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { ticks(count: 3) }"},
                }
            )
        )
        received = []
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "complete":
                break
            received.append(message["payload"]["data"]["ticks"])
    assert received == ["bob:0", "bob:1", "bob:2"]

    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}})
        )
        # Accepted, and the subscription that needs the caller is refused with its code.
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { ticks(count: 3) }"},
                }
            )
        )
        refused = json.loads(await ws.recv())
        assert refused["type"] == "next"
        assert refused["payload"]["data"] is None
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert json.loads(await ws.recv())["type"] == "complete"


async def test_health_metrics_and_graphiql_in_dev(bff: tuple[str, BffMetrics]) -> None:
    url, _ = bff
    await gql(url, "{ public }")
    await gql(url, "{ broken }")  # counted by its code
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/healthz")).json()["status"] == "ok"
        assert (await client.get(f"{url}/readyz")).status_code == 200
        metrics = (await client.get(f"{url}/metrics")).text
        ide = await client.get(f"{url}/graphql", headers={"Accept": "text/html"})
    assert 'bff_resolver_seconds_count{bff="kit",field="public"}' in metrics
    assert 'bff_errors_total{bff="kit",code="INTERNAL"}' in metrics
    assert "process_resident_memory_bytes " in metrics
    assert ide.status_code == 200
    assert "graphiql" in ide.text.lower()


async def test_production_schema_refuses_introspection() -> None:
    schema = build_schema(query=Query, production=True)
    result = await schema.execute("{ __schema { types { name } } }")
    assert result.errors
    dev = await build_schema(query=Query).execute("{ __schema { queryType { name } } }")
    assert dev.data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_only_unexpected_errors_are_logged_at_error_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client's syntax error, an unknown field or a refusal is its own mistake (an info
    line); an unexpected failure is ours (one error line, with its traceback)."""
    schema = build_schema(query=Query)
    with caplog.at_level(logging.INFO), structlog.testing.capture_logs() as events:
        for document in ("{ public ", "{ nope }", "{ refused }", "{ broken }"):
            assert (await schema.execute(document)).errors
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    errors = [event for event in events if event["log_level"] == "error"]
    assert [event["event"] for event in errors] == ["graphql.internal_error"]
    assert "hunter2" in str(errors[0]["exc_info"])  # the broken resolver's own exception
    client = [event["code"] for event in events if event["event"] == "graphql.client_error"]
    assert client == ["BAD_USER_INPUT", "BAD_USER_INPUT", "CONFLICT"]


async def test_errors_are_counted_by_the_code_the_client_sees(
    bff: tuple[str, BffMetrics],
) -> None:
    """A parse error and a validation error count as BAD_USER_INPUT, the first time a
    document is seen as much as after (validation is cached)."""
    url, metrics = bff

    def count(code: str) -> float:
        labels = {"bff": "kit", "code": code}
        return metrics.registry.get_sample_value("bff_errors_total", labels) or 0.0

    bad, internal = count("BAD_USER_INPUT"), count("INTERNAL")
    unseen = f"{{ nope_{uuid.uuid4().hex} }}"
    for document in ("{ public ", unseen, unseen):
        assert (await gql(url, document))["errors"]
    assert count("BAD_USER_INPUT") == bad + 3
    assert count("INTERNAL") == internal
