"""Through the supergraph router against the real stack: the TypeScript SDK's end-to-end tests
(sdk/test/e2e/*.test.ts, node's test runner) and the router's own contract (health, header
propagation, subscriptions to subgraphs over WebSocket)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosedError
from websockets.typing import Subprotocol

from adx.schema_command import TRUSTED_DOCUMENTS
from adx.settings import Settings
from tests.gateway_client.tcp_proxy import TcpProxy
from tests.router.conftest import (
    SDK_DIR,
    People,
    Router,
    port_of,
    router_process,
    run_node_tests,
)
from tests.support.bff import issue_token, subscribe_ws

E2E_SOURCES = sorted((SDK_DIR / "test" / "e2e").glob("*.test.ts"))


@pytest.mark.parametrize(
    "source", E2E_SOURCES, ids=[p.name.removesuffix(".test.ts") for p in E2E_SOURCES]
)
async def test_sdk_end_to_end(source: Path, router: Router, control: str, sdk_tests: Path) -> None:
    await run_node_tests(
        sdk_tests / "e2e" / source.name.replace(".ts", ".js"),
        {"ADX_ROUTER_URL": router.url, "ADX_E2E_CONTROL_URL": control},
        router.log,
    )


async def test_health_and_readiness(router: Router) -> None:
    base = router.url.removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{base}/healthz")).status_code == 200
        assert (await http.get(f"{base}/readyz")).status_code == 200


async def test_authorization_reaches_the_subgraphs_over_http_and_websocket(
    router: Router, settings: Settings, people: People, control: str
) -> None:
    """No token: UNAUTHENTICATED from the subgraph; a token: the subgraph sees the caller, for a
    query (HTTP header) and for a subscription (router -> subgraph over WebSocket)."""
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(f"{control}/operations", json={"steps": 1})
        operation_id = started.json()["id"]
        query = {
            "query": "query($id: ID!) { operation(id: $id) { id user { id } } }",
            "variables": {"id": operation_id},
        }
        anonymous = (await http.post(router.url, json=query)).json()
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        token = issue_token(settings, people.alice)
        answer = await http.post(
            router.url, json=query, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.json()["data"]["operation"] == {
            "id": operation_id,
            "user": {"id": people.alice.user_id},
        }
    events = await subscribe_ws(
        router.url.removesuffix("/graphql"),
        "subscription($id: ID!) { operationProgress(id: $id) { offset terminal status } }",
        {"id": operation_id},
        token,
    )
    updates = [event["data"]["operationProgress"] for event in events]
    assert [u["offset"] for u in updates] == list(range(1, len(updates) + 1))
    assert updates[-1]["terminal"] is True
    assert updates[-1]["status"] == "COMPLETED"


async def test_a_subscription_without_a_valid_token_is_unauthenticated_at_once(
    router: Router, settings: Settings, people: People, control: str
) -> None:
    """No token, a forged one, an expired one: the client gets UNAUTHENTICATED (not a masked
    error, not after the router has retried the subgraph connection for half a minute)."""
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(f"{control}/operations", json={"steps": 1})
    operation_id = started.json()["id"]
    expired = settings.model_copy(update={"access_token_ttl_seconds": -600})
    query = "subscription($id: ID!) { operationProgress(id: $id) { offset } }"
    for token in (None, "forged", issue_token(expired, people.alice)):
        async with asyncio.timeout(10):  # the router's retries take about 40 s
            events = await subscribe_ws(
                router.url.removesuffix("/graphql"), query, {"id": operation_id}, token
            )
        assert len(events) == 1, (token, events)
        assert events[0].get("data") is None
        assert [e["extensions"]["code"] for e in events[0]["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.behaviour
async def test_a_subscription_runs_past_its_tokens_expiry(
    router: Router, settings: Settings, people: People, control: str
) -> None:
    """The token is checked when a subscription starts (README, Frontend SDK): one started
    with a token that expires meanwhile still gets every event to the operation's end."""
    short_lived = settings.model_copy(update={"access_token_ttl_seconds": 2})
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(
            f"{control}/operations", json={"steps": 4, "delayMs": 1000, "who": "alice"}
        )
    events = await subscribe_ws(
        router.url.removesuffix("/graphql"),
        "subscription($id: ID!) { operationProgress(id: $id) { offset terminal status } }",
        {"id": started.json()["id"]},
        issue_token(short_lived, people.alice),
    )
    updates = [event["data"]["operationProgress"] for event in events]
    assert [u["offset"] for u in updates] == list(range(1, len(updates) + 1))
    assert updates[-1]["terminal"] is True
    assert updates[-1]["status"] == "COMPLETED"


async def ws_updates(url: str, token: str, payload: dict[str, Any]) -> AsyncIterator[Any]:
    """A plain graphql-transport-ws client's ``operationProgress`` updates, to ``complete``."""
    async with websockets.connect(
        url.replace("http://", "ws://"), subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        while (message := json.loads(await ws.recv()))["type"] != "complete":
            assert message["type"] == "next", message
            yield message["payload"]["data"]["operationProgress"]


async def sse_updates(url: str, token: str, payload: dict[str, Any]) -> AsyncIterator[Any]:
    """A plain graphql-sse client's (distinct connections mode) updates, to ``complete``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(timeout=None) as http,  # noqa: S113 (bounded by the caller)
        http.stream("POST", url, json=payload, headers=headers) as answer,
    ):
        assert answer.status_code == 200, await answer.aread()
        event = None
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "complete":
                    return
            elif line.startswith("data:") and event == "next":
                yield json.loads(line.removeprefix("data:"))["data"]["operationProgress"]


@pytest.mark.behaviour
@pytest.mark.parametrize("updates", [ws_updates, sse_updates], ids=["graphql-ws", "graphql-sse"])
async def test_after_an_upstream_reconnect_a_plain_client_gets_each_event_once(
    router: Router,
    settings: Settings,
    people: People,
    control: str,
    tmp_path: Path,
    updates: Callable[[str, str, dict[str, Any]], AsyncIterator[Any]],
) -> None:
    """The router's connection to the workflow BFF drops mid-stream (as when the BFF
    restarts) and the router subscribes there again with the client's original variables: a
    plain client of either protocol, which keeps no offsets, still gets each event once and
    in order."""
    proxy = TcpProxy(port_of(router.subgraphs["workflow"]))
    await proxy.start()
    subgraphs = {**router.subgraphs, "workflow": f"http://127.0.0.1:{proxy.port}/graphql"}
    query = "subscription($id: ID!) { operationProgress(id: $id) { offset terminal status } }"
    offsets: list[int] = []
    last: dict[str, Any] = {}
    try:
        async with (
            router_process(subgraphs, tmp_path) as routed,
            httpx.AsyncClient(timeout=30) as http,
        ):
            started = await http.post(
                f"{control}/operations", json={"steps": 6, "delayMs": 500, "who": "alice"}
            )
            payload = {"query": query, "variables": {"id": started.json()["id"]}}
            token = issue_token(settings, people.alice)
            async with asyncio.timeout(90):
                async for last in updates(routed.url, token, payload):
                    offsets.append(last["offset"])
                    if len(offsets) == 3:  # the upstream connection drops
                        await proxy.cut()
                        await proxy.restore()
    finally:
        await proxy.cut()
    assert offsets == list(range(1, len(offsets) + 1)), offsets
    assert len(offsets) > 3
    assert last["terminal"] is True
    assert last["status"] == "COMPLETED"


@pytest.mark.behaviour
async def test_a_subscription_outlives_the_upstream_timeout(
    router: Router, settings: Settings, people: People, control: str, tmp_path: Path
) -> None:
    """The router's upstream timeout gives up a hung query or mutation; a subscription is
    long-lived and must go on past it to its last event."""
    async with (
        router_process(
            router.subgraphs, tmp_path, settings={"ADX_ROUTER_UPSTREAM_TIMEOUT_SECONDS": "1"}
        ) as short,
        httpx.AsyncClient(timeout=30) as http,
    ):
        started = await http.post(
            f"{control}/operations", json={"steps": 3, "delayMs": 1000, "who": "alice"}
        )
        events = await subscribe_ws(
            short.url.removesuffix("/graphql"),
            "subscription($id: ID!) { operationProgress(id: $id) { offset terminal status } }",
            {"id": started.json()["id"]},
            issue_token(settings, people.alice),
        )
    updates = [event["data"]["operationProgress"] for event in events]
    assert updates[-1]["terminal"] is True
    assert updates[-1]["status"] == "COMPLETED"


@pytest.mark.behaviour
async def test_with_trusted_documents_only_the_sdks_documents_run(
    router: Router, settings: Settings, people: People, control: str, tmp_path: Path
) -> None:
    """Production's router runs the SDK's generated documents sent by id (over HTTP and over
    WebSocket) and nothing else: not their text, not another document, not an unknown id."""
    trusted: dict[str, str] = json.loads(TRUSTED_DOCUMENTS.read_text())

    def id_of(start: str) -> str:
        return next(key for key, text in trusted.items() if text.lstrip().startswith(start))

    def by_id(key: str) -> dict[str, Any]:
        return {"persistedQuery": {"version": 1, "sha256Hash": key}}

    token = issue_token(settings, people.alice)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        router_process(
            router.subgraphs, tmp_path, settings={"ADX_ROUTER_TRUSTED_DOCUMENTS": "true"}
        ) as strict,
        httpx.AsyncClient(timeout=30) as http,
    ):
        started = (await http.post(f"{control}/operations", json={"steps": 1})).json()["id"]
        get_operation = id_of("query GetOperation(")
        sent = {"variables": {"id": started}, "extensions": by_id(get_operation)}
        answer = (await http.post(strict.url, json=sent, headers=headers)).json()
        assert answer["data"]["operation"]["id"] == started, answer
        refusals = [
            {"query": trusted[get_operation], "variables": {"id": started}},
            {"query": "{ __typename }"},
            {"extensions": by_id(hashlib.sha256(b"{ __typename }").hexdigest())},
        ]
        for refused in refusals:
            answer = (await http.post(strict.url, json=refused, headers=headers)).json()
            assert answer.get("data") is None, (refused, answer)
            assert answer["errors"][0]["extensions"]["code"] in (
                "CANNOT_SEND_PQ_ID_AND_BODY",
                "PERSISTED_QUERY_NOT_IN_LIST",
            )
        events = await subscribe_ws(
            strict.url.removesuffix("/graphql"),
            "",
            {"id": started},
            token,
            extensions=by_id(id_of("subscription OperationProgress(")),
        )
        assert events[-1]["data"]["operationProgress"]["terminal"] is True, events
        # Text over WebSocket: the router ends the connection (4500) without running it.
        with pytest.raises(ConnectionClosedError) as closed:
            await subscribe_ws(
                strict.url.removesuffix("/graphql"),
                trusted[id_of("subscription OperationProgress(")],
                {"id": started},
                token,
            )
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.reason == "PersistedQueryOnly"


async def test_the_router_serves_prometheus_metrics(
    router: Router, settings: Settings, people: People, control: str
) -> None:
    """Requests and the subgraph calls they caused, on /metrics, as every ADX process."""
    async with httpx.AsyncClient(timeout=30) as http:
        started = (await http.post(f"{control}/operations", json={"steps": 1})).json()["id"]
        query = {
            "query": "query($id: ID!) { operation(id: $id) { id } }",
            "variables": {"id": started},
        }
        headers = {"Authorization": f"Bearer {issue_token(settings, people.alice)}"}
        assert (await http.post(router.url, json=query, headers=headers)).status_code == 200
        metrics = await http.get(router.url.removesuffix("/graphql") + "/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    subgraph_calls = [
        line
        for line in metrics.text.splitlines()
        if line.startswith("graphql_gateway_subgraph_execute_duration_count")
        and 'subgraphName="workflow"' in line
    ]
    assert subgraph_calls, metrics.text[:2000]
