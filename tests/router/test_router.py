"""Through the supergraph router against the real stack: the TypeScript SDK's end-to-end tests
(sdk/test/e2e/*.test.ts, node's test runner) and the router's own contract (health, header
propagation, subscriptions to subgraphs over WebSocket)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adx.settings import Settings
from tests.router.conftest import SDK_DIR, People, Router, run_node_tests
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
