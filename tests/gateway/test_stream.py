"""The gateway's SSE progress stream on the real dev server, resumable with Last-Event-ID."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from temporalio.client import Client

from tests.gateway.conftest import ALICE, BOB, Stack
from tests.workflow_client.flows import StepsInput
from workflow_client.operations import WorkflowOperations


async def read_sse(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int | None = None
) -> list[dict[str, Any]]:
    """The events of one SSE response, as {"id", "event", "data"} (comments skipped)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line == "":
                if current:
                    events.append(current)
                    current = {}
                    if limit is not None and len(events) >= limit:
                        break
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return events


async def test_stream_sends_offsets_as_ids_and_resumes_after_last_event_id(
    stack: Stack, client: Client, demo_queue: str, demo_worker: None, http: httpx.AsyncClient
) -> None:
    ops = WorkflowOperations(client, task_queues={"demo_steps": demo_queue})
    op = await ops.start(
        ALICE, "demo_steps", StepsInput(label=uuid.uuid4().hex[:8], steps=3, step_delay_ms=150)
    )
    url = f"{stack.gateway}/api/workflows/{op.id}/stream"
    head = await read_sse(http, url, stack.headers(), limit=3)
    assert [e["id"] for e in head] == ["1", "2", "3"]
    assert all(e["event"] == "progress" for e in head)
    # The connection dropped; the client comes back with the last id it saw.
    tail = await read_sse(http, url, stack.headers(extra={"Last-Event-ID": head[-1]["id"]}))
    offsets = [int(e["id"]) for e in head + tail]
    assert offsets == list(range(1, len(offsets) + 1))
    terminal = tail[-1]
    assert terminal["event"] == "terminal"
    body = json.loads(terminal["data"])
    assert body["status"] == "COMPLETED"
    assert body["result"]["done"] == ["s0", "s1", "s2"]


async def test_stream_of_another_tenants_operation_is_404(
    stack: Stack, client: Client, demo_queue: str, demo_worker: None, http: httpx.AsyncClient
) -> None:
    ops = WorkflowOperations(client, task_queues={"demo_steps": demo_queue})
    op = await ops.start(ALICE, "demo_steps", StepsInput(label="x", steps=1))
    response = await http.get(
        f"{stack.gateway}/api/workflows/{op.id}/stream", headers=stack.headers(BOB)
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
