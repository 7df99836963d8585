"""1. Workflow overhead (seed 004, Requirement 7.1): one simple operation as a direct gateway
call vs the same operation as a workflow through the gateway, side by side.

Direct: ``GET /api/user/users/{id}`` (gateway -> user service -> SQLite).
Workflow: ``POST /api/workflows/get_user_profile`` (gateway -> WorkflowOperations.execute ->
Temporal -> user worker, whose local activity reads the same row) answering 200 with the result.
References: the same workflow through workflow_client with no HTTP, and the floor of any
workflow round trip (a no-op workflow) with and without eager start.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from bench import flows
from bench.client import HttpConnection, HttpError
from bench.context import Bench, ms
from bench.loops import interleaved, timed
from bench.stack import ALICE
from bench.stats import Dist
from contracts.names import WorkflowType
from contracts.user import GetUserProfileInput
from workflow_client.models import ExecuteOutcome
from workflow_client.worker import create_worker

SECTION = "1 workflow overhead"
GOAL_ADDED_P50_MS = 25.0
REQUIREMENT_ADDED_MS = 100.0


async def measure(bench: Bench) -> None:
    gateway = bench.stack.url("gateway")
    direct_conn = HttpConnection(gateway)
    workflow_conn = HttpConnection(gateway)
    profile_path = f"/api/user/users/{ALICE.user_id}"
    start_path = f"/api/workflows/{WorkflowType.GET_USER_PROFILE.value}"
    body = {"user_id": ALICE.user_id}

    async def direct() -> None:
        reply = await direct_conn.request("GET", profile_path, headers=bench.auth)
        if reply.status != 200:
            raise HttpError(f"direct call: {reply.status} {reply.body[:200]!r}")

    async def as_workflow() -> None:
        reply = await workflow_conn.post_json(start_path, body, headers=bench.auth)
        if reply.status != 200:
            raise HttpError(f"workflow call: {reply.status} {reply.body[:200]!r}")

    async def via_client() -> None:
        outcome: ExecuteOutcome[Any] = await bench.ops.execute(
            ALICE,
            WorkflowType.GET_USER_PROFILE.value,
            GetUserProfileInput(user_id=ALICE.user_id),
            budget=timedelta(seconds=30),
        )
        if not outcome.completed:
            raise RuntimeError("get_user_profile did not complete")

    samples = await interleaved(
        {"direct": direct, "workflow": as_workflow, "workflow_client": via_client},
        bench.profile.overhead_rounds,
    )
    await direct_conn.close()
    await workflow_conn.close()
    floors = await _floors(bench)

    direct_d = Dist.of(samples["direct"])
    workflow_d = Dist.of(samples["workflow"])
    client_d = Dist.of(samples["workflow_client"])
    added_p50 = workflow_d.p50 - direct_d.p50
    added_p99 = workflow_d.p99 - direct_d.p99
    bench.results["workflow_overhead"] = {
        "direct_path": f"GET {profile_path} via the gateway",
        "workflow_path": f"POST {start_path} via the gateway (execute, 200 with the result)",
        "direct": direct_d.json(),
        "workflow": workflow_d.json(),
        "workflow_client_execute": client_d.json(),
        "added_p50_ms": round(added_p50, 3),
        "added_p99_ms": round(added_p99, 3),
        "floors": {name: dist.json() for name, dist in floors.items()},
    }
    bench.row(
        SECTION,
        "direct gateway call GET /api/user/users/{id}: p50 / p99",
        f"{ms(direct_d.p50)} / {ms(direct_d.p99)}",
        "< 200 ms (seed 001)",
        direct_d.p99 < 200,
    )
    bench.row(
        SECTION,
        "same op as workflow (POST /api/workflows/get_user_profile): p50 / p99",
        f"{ms(workflow_d.p50)} / {ms(workflow_d.p99)}",
        "< 5 s (seed 001)",
        workflow_d.p99 < 5000,
    )
    bench.row(
        SECTION,
        "added latency of the workflow: p50 / p99",
        f"+{ms(added_p50)} / +{ms(added_p99)}",
        f"p50 <= {GOAL_ADDED_P50_MS:.0f} ms (Req. 7.1: <= {REQUIREMENT_ADDED_MS:.0f} ms)",
        added_p50 <= GOAL_ADDED_P50_MS,
    )
    bench.row(
        SECTION,
        "ref: same workflow, workflow_client.execute, no HTTP: p50 / p99",
        f"{ms(client_d.p50)} / {ms(client_d.p99)}",
    )
    for name, dist in floors.items():
        bench.row(SECTION, f"ref: {name}: p50 / p99", f"{ms(dist.p50)} / {ms(dist.p99)}")


async def _floors(bench: Bench) -> dict[str, Dist]:
    """The no-op workflow round trip, on the bench worker process and on a worker inside
    this process (the only way eager start applies), with and without eager start."""
    client = bench.client
    samples = bench.profile.floor_samples
    local_queue = f"bench-eager-{uuid.uuid4().hex[:8]}"

    async def remote() -> None:
        await client.execute_workflow(
            flows.NOOP, id=f"bench-noop-{uuid.uuid4().hex}", task_queue=flows.BENCH_TASK_QUEUE
        )

    async def local(eager: bool) -> None:
        await client.execute_workflow(
            flows.NOOP,
            id=f"bench-noop-{uuid.uuid4().hex}",
            task_queue=local_queue,
            request_eager_start=eager,
        )

    async def local_plain() -> None:
        await local(False)

    async def local_eager() -> None:
        await local(True)

    worker = create_worker(client, task_queue=local_queue, workflows=[flows.NoopWorkflow])
    async with worker:
        await timed(local_plain)  # the worker's first task warms it up
        result = await interleaved(
            {
                "no-op workflow round trip (worker process)": remote,
                "no-op workflow round trip (in-process worker)": local_plain,
                "same with request_eager_start": local_eager,
            },
            samples,
        )
    return {name: Dist.of(values) for name, values in result.items()}
