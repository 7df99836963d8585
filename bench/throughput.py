"""4. Throughput: operations started and completed per second with 1, 10 and 50 concurrent
clients, through a BFF mutation and through workflow_client directly, with the CPU each
process used in the window (which one saturates first is the bottleneck).

The operation is ``get_user_profile`` (start, run on the user worker, result). The BFF path is
the bench subgraph's ``runOperation`` mutation (``WorkflowOperations.execute`` in the BFF
process); the direct path is ``WorkflowOperations.execute`` in the benchmark process.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bench.client import HttpConnection, graphql
from bench.context import SELF, Bench, ms
from bench.loops import LoopResult, closed_loop
from bench.stack import ALICE
from bench.stats import CpuWindow, Dist
from contracts.names import WorkflowType
from contracts.user import GetUserProfileInput
from workflow_client.models import ExecuteOutcome

SECTION = "4 throughput"
MUTATION = "mutation Run($type: String!) { runOperation(type: $type) { id status completed } }"
OPERATION = WorkflowType.GET_USER_PROFILE.value
# A level that adds less than this over the previous one is where throughput saturates.
SATURATION_GAIN = 1.15


async def measure(bench: Bench) -> None:
    top = max(bench.profile.throughput_levels)
    connections = [HttpConnection(bench.stack.url("bff_bench")) for _ in range(top)]

    async def via_bff(index: int) -> None:
        document = await graphql(
            connections[index], MUTATION, {"type": OPERATION}, token=bench.token
        )
        if not document["data"]["runOperation"]["completed"]:
            raise RuntimeError("the operation did not complete")

    async def via_client(_index: int) -> None:
        outcome: ExecuteOutcome[Any] = await bench.ops.execute(
            ALICE,
            OPERATION,
            GetUserProfileInput(user_id=ALICE.user_id),
            budget=timedelta(seconds=30),
        )
        if not outcome.completed:
            raise RuntimeError("the operation did not complete")

    paths: dict[str, Callable[[int], Awaitable[None]]] = {
        "BFF mutation runOperation": via_bff,
        "workflow_client execute": via_client,
    }
    report: dict[str, Any] = {"operation": OPERATION, "paths": {}}
    for path, operation in paths.items():
        levels = []
        for concurrency in bench.profile.throughput_levels:
            levels.append(await _level(bench, operation, concurrency))
        report["paths"][path] = levels
        _rows(bench, path, levels)
    for connection in connections:
        await connection.close()
    report["cpu_note"] = (
        f"CPU in % of one core; the machine has {os.cpu_count()} cores, shared by every "
        "process including the load client"
    )
    bench.results["throughput"] = report


async def _level(
    bench: Bench, operation: Callable[[int], Awaitable[None]], concurrency: int
) -> dict[str, Any]:
    pids = {SELF: os.getpid(), **bench.stack.pids()}
    window = CpuWindow(pids)

    def on_window(opening: bool) -> None:
        if opening:
            window.start()
        else:
            window.stop()

    result: LoopResult = await closed_loop(
        operation,
        concurrency,
        warmup=bench.profile.throughput_warmup,
        seconds=bench.profile.throughput_seconds,
        on_window=on_window,
    )
    cpu = window.percent()
    busiest = sorted(cpu.items(), key=lambda item: item[1], reverse=True)
    return {
        "concurrency": concurrency,
        "ops_per_second": round(result.per_second, 1),
        "completed": result.completed,
        "errors": result.errors,
        "first_error": result.first_error,
        "latency": Dist.of(result.latencies_ms).json(),
        "cpu_percent": dict(busiest),
        "cpu_total_percent": round(sum(cpu.values()), 1),
        "machine_busy_percent": window.machine_percent(),
    }


def _rows(bench: Bench, path: str, levels: list[dict[str, Any]]) -> None:
    for level in levels:
        top3 = list(level["cpu_percent"].items())[:3]
        busiest = ", ".join(f"{name} {share:.0f}%" for name, share in top3)
        errors = f", {level['errors']} errors" if level["errors"] else ""
        bench.row(
            SECTION,
            f"{path}, {level['concurrency']} concurrent: ops/s, p50 (busiest CPU)",
            f"{level['ops_per_second']:.0f}/s, {ms(level['latency']['p50_ms'] or float('nan'))}"
            f"{errors} ({busiest})",
        )
    saturated_at = None
    for previous, current in itertools.pairwise(levels):
        if current["ops_per_second"] < previous["ops_per_second"] * SATURATION_GAIN:
            saturated_at = previous
            break
    best = max(levels, key=lambda level: level["ops_per_second"])
    top = levels[-1]
    bottleneck = next(iter(top["cpu_percent"].items()))
    cores = (os.cpu_count() or 1) * 100
    where = (
        f"saturates by {saturated_at['concurrency']} clients"
        if saturated_at
        else f"still growing at {top['concurrency']} clients"
    )
    bench.row(
        SECTION,
        f"{path}: peak, where it saturates, bottleneck",
        f"{best['ops_per_second']:.0f} ops/s, {where}; busiest: {bottleneck[0]} "
        f"{bottleneck[1]:.0f}% of a core; the stack and client {top['cpu_total_percent']:.0f}%, "
        f"the whole machine {top['machine_busy_percent']:.0f}% of {cores}%",
    )
