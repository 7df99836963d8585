"""The workflow subgraph end to end: real Temporal, real workflows, real HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from adx.settings import Settings
from bffs.workflow.subgraph import SUBGRAPH
from contracts.context import RequestContext
from graph.context import BffDependencies
from tests.support.bff import graphql, issue_token, running_bff, subscribe_ws
from tests.workflow_client import flows
from tests.workflow_client.flows import StepsInput, StepsResult
from workflow_client.operations import WorkflowOperations

OPERATION = """query($id: ID!) { operation(id: $id) { id type status retryOf user { id }
  progress { completed total lastOffset fraction } result
  error { code message compensations } } }"""
PROGRESS = """subscription($id: ID!, $from: Int) { operationProgress(id: $id, fromOffset: $from) {
  offset status terminal event { kind step } progress { completed total } result
  error { code message compensations } } }"""


@pytest.fixture(scope="module")
async def bff(
    settings: Settings, client: Client, demo_queue: str, demo_worker: None
) -> AsyncIterator[tuple[str, BffDependencies]]:
    # The demo workflows run on the test's queue.
    operations = WorkflowOperations(client, task_queues={"demo_steps": demo_queue})
    async with running_bff(SUBGRAPH, settings, operations=operations) as running:
        yield running


def steps(n: int, delay_ms: int = 0) -> StepsInput:
    return StepsInput(label=uuid.uuid4().hex[:8], steps=n, step_delay_ms=delay_ms)


async def test_operation_query(
    bff: tuple[str, BffDependencies],
    settings: Settings,
    ops: WorkflowOperations,
    alice: RequestContext,
) -> None:
    url, deps = bff
    op = await deps.operations.start(alice, "demo_steps", steps(2))
    await deps.operations.result(alice, op.id, result_type=StepsResult)
    body = await graphql(url, OPERATION, {"id": op.id}, issue_token(settings, alice))
    data = body["data"]["operation"]
    assert data["status"] == "COMPLETED"
    assert data["type"] == "demo_steps"
    assert data["user"] == {"id": alice.user_id}
    assert data["progress"]["completed"] == 2
    assert data["result"]["done"] == ["s0", "s1"]
    assert data["error"] is None


async def test_another_tenant_sees_no_operation(
    bff: tuple[str, BffDependencies],
    settings: Settings,
    alice: RequestContext,
    mallory: RequestContext,
) -> None:
    url, deps = bff
    op = await deps.operations.start(alice, "demo_steps", steps(1))
    token = issue_token(settings, mallory)
    body = await graphql(url, OPERATION, {"id": op.id}, token)
    assert body["data"]["operation"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert body["errors"][0]["path"] == ["operation"]
    history = await graphql(
        url,
        "query($id: ID!) { operationHistory(id: $id) { steps { name } } }",
        {"id": op.id},
        token,
    )
    assert history["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    cancel = await graphql(
        url, "mutation($id: ID!) { cancelOperation(id: $id) { status } }", {"id": op.id}, token
    )
    assert cancel["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_unauthenticated_is_refused(bff: tuple[str, BffDependencies]) -> None:
    body = await graphql(bff[0], OPERATION, {"id": "x"})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_history_names_steps_and_compensations_of_a_failure(
    bff: tuple[str, BffDependencies], settings: Settings, alice: RequestContext
) -> None:
    url, deps = bff
    request = steps(3)
    flows.FAILING_STEPS.add(f"{request.label}:s2")
    op = await deps.operations.start(alice, "demo_steps", request)
    body = await graphql(url, OPERATION, {"id": op.id}, issue_token(settings, alice))
    for _ in range(100):
        if body["data"]["operation"]["status"] != "RUNNING":
            break
        await asyncio.sleep(0.05)
        body = await graphql(url, OPERATION, {"id": op.id}, issue_token(settings, alice))
    assert body["data"]["operation"]["status"] == "FAILED"
    assert body["data"]["operation"]["error"]["compensations"] == ["undo_s1", "undo_s0"]
    history = await graphql(
        url,
        """query($id: ID!) { operationHistory(id: $id) {
             steps { name state durationMs } compensations { name state } } }""",
        {"id": op.id},
        issue_token(settings, alice),
    )
    data = history["data"]["operationHistory"]
    assert [(s["name"], s["state"]) for s in data["steps"]] == [
        ("s0", "COMPLETED"),
        ("s1", "COMPLETED"),
        ("s2", "FAILED"),
    ]
    assert all(s["durationMs"] is not None and s["durationMs"] >= 0 for s in data["steps"])
    assert [(c["name"], c["state"]) for c in data["compensations"]] == [
        ("s1", "COMPLETED"),
        ("s0", "COMPLETED"),
    ]


async def test_cancel_and_retry_mutations(
    bff: tuple[str, BffDependencies], settings: Settings, alice: RequestContext
) -> None:
    url, deps = bff
    token = issue_token(settings, alice)
    op = await deps.operations.start(alice, "demo_steps", steps(5, delay_ms=300))
    body = await graphql(
        url, "mutation($id: ID!) { cancelOperation(id: $id) { id } }", {"id": op.id}, token
    )
    assert body["data"]["cancelOperation"]["id"] == op.id
    for _ in range(100):
        status = (await deps.operations.describe(alice, op.id)).status
        if status.is_terminal:
            break
        await asyncio.sleep(0.05)
    assert status.value == "CANCELED"
    retried = await graphql(
        url,
        "mutation($id: ID!) { retryOperation(id: $id) { id retryOf status } }",
        {"id": op.id},
        token,
    )
    data = retried["data"]["retryOperation"]
    assert data["retryOf"] == op.id
    assert data["id"] != op.id
    await deps.operations.cancel(alice, data["id"], "cleanup")


async def test_progress_subscription_streams_in_order_and_resumes(
    bff: tuple[str, BffDependencies], settings: Settings, alice: RequestContext
) -> None:
    url, deps = bff
    token = issue_token(settings, alice)
    op = await deps.operations.start(alice, "demo_steps", steps(3, delay_ms=200))
    first, second = await asyncio.gather(
        subscribe_ws(url, PROGRESS, {"id": op.id}, token),
        subscribe_ws(url, PROGRESS, {"id": op.id}, token),
    )
    events = [p["data"]["operationProgress"] for p in first]
    assert events == [p["data"]["operationProgress"] for p in second]
    assert [e["offset"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["terminal"] is True
    assert events[-1]["status"] == "COMPLETED"
    assert events[-1]["result"]["done"] == ["s0", "s1", "s2"]
    resumed = await subscribe_ws(url, PROGRESS, {"id": op.id, "from": 4}, token)
    assert [p["data"]["operationProgress"]["offset"] for p in resumed] == [
        e["offset"] for e in events if e["offset"] > 4
    ]


async def test_progress_subscription_refuses_another_tenant(
    bff: tuple[str, BffDependencies],
    settings: Settings,
    alice: RequestContext,
    mallory: RequestContext,
) -> None:
    url, deps = bff
    op = await deps.operations.start(alice, "demo_steps", steps(1))
    received = await subscribe_ws(url, PROGRESS, {"id": op.id}, issue_token(settings, mallory))
    assert received[0]["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_progress_subscription_over_sse(
    bff: tuple[str, BffDependencies], settings: Settings, alice: RequestContext
) -> None:
    url, deps = bff
    op = await deps.operations.start(alice, "demo_steps", steps(2, delay_ms=100))
    offsets: list[int] = []
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream(
            "POST",
            f"{url}/graphql",
            json={"query": PROGRESS, "variables": {"id": op.id}},
            headers={
                "Accept": "text/event-stream",
                "Authorization": f"Bearer {issue_token(settings, alice)}",
            },
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        import json

        async for line in response.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                payload = json.loads(line[5:])
                if "data" in payload:
                    offsets.append(payload["data"]["operationProgress"]["offset"])
    assert offsets == list(range(1, len(offsets) + 1))
    assert len(offsets) >= 6
