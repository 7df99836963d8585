"""5. Live progress: how long a recorded step takes to reach a subscriber, how many Temporal
reads one operation costs as its subscribers grow, and what an open subscription costs.

The workflow is ``bench_progress`` on the bench worker: each step's activity stamps
``time.time()`` right before it completes and the workflow records that stamp in the step's
``step_completed`` event. Latency = when a subscriber received the event - that stamp (all
processes share the machine's clock). The event's own ``at`` (``workflow.now()``, the start of
the workflow task that recorded it) is reported too.

Subscribers: ProgressHub in this process (hub level: reads are ``hub.reads``), the gateway's
SSE stream, and the workflow BFF's ``operationProgress`` over graphql-transport-ws.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench import flows
from bench.client import HttpConnection, WsSubscription
from bench.context import Bench, ms
from bench.stack import ALICE
from bench.stats import CpuWindow, Dist, rss_kb
from contracts.progress import EventKind

SECTION = "5 live progress"
GOAL_P50_MS = 75.0
GOAL_P99_MS = 250.0
FLAT_TOLERANCE = 0.10
# Step durations (ms), varied so events land at every phase of the watcher's adaptive polling.
FAST_STEPS = (60, 140, 230, 90, 310, 170, 120, 260)
# About one step a second: the fan-out runs (one broadcast per second, performance-facts.md).
SLOW_STEPS = (900, 1100, 1000, 950, 1050)
WS_QUERY = (
    "subscription Progress($id: ID!) "
    "{ operationProgress(id: $id) { offset terminal event { kind at } } }"
)
COMPLETED = EventKind.STEP_COMPLETED.value
# After the window closes, events stamped inside it may still be on their way.
GRACE_SECONDS = 1.0


@dataclass
class Receipts:
    """(offset, done_at or None, at, received) of every step_completed event received."""

    rows: list[tuple[int, float | None, float, float]] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    # Subscribers that have received at least one event.
    ready: int = 0

    def received(self, first: bool) -> bool:
        """Called on every event; returns False from then on (the subscriber is ready)."""
        if first:
            self.ready += 1
            self.first.set()
        return False

    def add(self, offset: int, done_at: float | None, at: float, received: float) -> None:
        self.rows.append((offset, done_at, at, received))

    def window(
        self, t0: float, t1: float, done_at_by_offset: dict[int, float]
    ) -> tuple[list[float], list[float]]:
        """Latencies (ms) from the activity's stamp and from the event's ``at``."""
        from_done, from_at = [], []
        for offset, done_at, at, received in self.rows:
            done = done_at if done_at is not None else done_at_by_offset.get(offset)
            if done is None or not t0 <= done <= t1:
                continue
            from_done.append((received - done) * 1000)
            from_at.append((received - at) * 1000)
        return from_done, from_at


def _steps(pattern: tuple[int, ...], seconds: float) -> flows.StepsInput:
    count = int(seconds * 1000 / (sum(pattern) / len(pattern))) + 2
    return flows.StepsInput(delays_ms=[pattern[i % len(pattern)] for i in range(count)])


async def _start(bench: Bench, pattern: tuple[int, ...], seconds: float) -> str:
    operation = await bench.ops.start(ALICE, flows.PROGRESS, _steps(pattern, seconds))
    return operation.id


async def _stop(bench: Bench, operation_id: str, tasks: list[asyncio.Task[None]]) -> None:
    with contextlib.suppress(Exception):
        await bench.ops.cancel(ALICE, operation_id, "benchmark done")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# Subscribers ----------------------------------------------------------------------------


async def _hub(
    bench: Bench, operation_id: str, receipts: Receipts, offsets: dict[int, float] | None = None
) -> None:
    stream = await bench.hub.subscribe(ALICE, operation_id)
    first = True
    try:
        async for update in stream:
            received = time.time()
            first = receipts.received(first)
            event = update.event
            if event is None or event.kind is not EventKind.STEP_COMPLETED:
                continue
            raw = event.details.get(flows.DONE_AT)
            done = float(raw) if isinstance(raw, int | float) else None
            if offsets is not None and done is not None:
                offsets[event.offset] = done
            receipts.add(event.offset, done, event.at.timestamp(), received)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def _sse(bench: Bench, operation_id: str, receipts: Receipts) -> None:
    connection = HttpConnection(bench.stack.url("gateway"))
    events: AsyncIterator[dict[str, str]] = connection.events(
        f"/api/workflows/{operation_id}/stream", headers=bench.auth
    )
    first = True
    async for fields in events:
        received = time.time()
        if fields.get("event") != "progress":
            if fields.get("event") == "terminal":
                return
            continue
        first = receipts.received(first)
        data = json.loads(fields["data"])
        event = data.get("event") or {}
        if event.get("kind") == COMPLETED:
            raw = (event.get("details") or {}).get(flows.DONE_AT)
            done = float(raw) if isinstance(raw, int | float) else None
            receipts.add(int(event["offset"]), done, _timestamp(event["at"]), received)


async def _ws(subscription: WsSubscription, receipts: Receipts) -> None:
    first = True
    try:
        async for payload in subscription.payloads():
            received = time.time()
            first = receipts.received(first)
            update = (payload.get("data") or {}).get("operationProgress") or {}
            event = update.get("event") or {}
            if event.get("kind") == COMPLETED:
                receipts.add(int(update["offset"]), None, _timestamp(event["at"]), received)
    finally:
        await subscription.close()


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# Measurements -----------------------------------------------------------------------------


async def measure(bench: Bench) -> None:
    report: dict[str, Any] = {"levels": [], "paths": {}}
    bench.results["live_progress"] = report
    await asyncio.sleep(1.0)  # let the previous section's work drain from Temporal and workers
    one = await _level(bench, 1, all_paths=True)
    report["all_paths"] = one
    for count in bench.profile.subscriber_levels:
        report["levels"].append(await _level(bench, count))
    levels = report["levels"]
    for path, data in one["paths"].items():
        d = _dist(data["from_done"])
        report["paths"][path] = data
        bench.row(
            SECTION,
            f"step recorded -> subscriber, {path}: p50 / p99",
            f"{ms(d.p50)} / {ms(d.p99)} (n={d.n})",
            f"p50 <= {GOAL_P50_MS:.0f} ms, p99 <= {GOAL_P99_MS:.0f} ms",
            d.p50 <= GOAL_P50_MS and d.p99 <= GOAL_P99_MS,
        )
    hub_at = _dist(one["paths"]["hub"]["from_at"])
    bench.row(
        SECTION,
        "ref: event's own `at` (workflow task start) -> hub subscriber: p50 / p99",
        f"{ms(hub_at.p50)} / {ms(hub_at.p99)}",
    )
    base = levels[0]["reads_per_second"]
    worst = max(abs(level["reads_per_second"] - base) / base for level in levels) if base else 1
    reads = ", ".join(
        f"{level['subscribers']}: {level['reads_per_second']:.1f}" for level in levels
    )
    bench.row(
        SECTION,
        "Temporal progress reads/s for one operation, by subscribers (hub)",
        reads,
        f"flat (within {FLAT_TOLERANCE:.0%})",
        worst <= FLAT_TOLERANCE,
    )
    hub_dists = [
        (level["subscribers"], _dist(level["paths"]["hub"]["from_done"])) for level in levels
    ]
    latencies = ", ".join(f"{count}: {ms(d.p50)} / {ms(d.p99)}" for count, d in hub_dists)
    bench.row(SECTION, "hub delivery p50 / p99 by subscribers", latencies)
    report["reads_max_deviation"] = round(worst, 3)
    await _hub_memory(bench, max(bench.profile.subscriber_levels))
    await _fanout(bench, "ws", bench.profile.ws_subscriptions)
    if bench.profile.sse_subscriptions:
        await _fanout(bench, "sse", bench.profile.sse_subscriptions)


def _dist(data: dict[str, Any]) -> Dist:
    nan = float("nan")

    def value(key: str) -> float:
        raw = data.get(key)
        return nan if raw is None else float(raw)

    return Dist(
        n=int(data["n"]),
        p50=value("p50_ms"),
        p90=value("p90_ms"),
        p99=value("p99_ms"),
        mean=value("mean_ms"),
        min=value("min_ms"),
        max=value("max_ms"),
    )


async def _level(bench: Bench, count: int, *, all_paths: bool = False) -> dict[str, Any]:
    """``count`` hub subscribers on a fresh operation for one window; with ``all_paths`` also
    one gateway SSE and one workflow BFF WebSocket subscriber (their processes then poll the
    same operation too, so reads are only compared between hub-only runs)."""
    seconds = bench.profile.progress_seconds
    operation_id = await _start(bench, FAST_STEPS, seconds + 30)
    offsets: dict[int, float] = {}
    hub_receipts = Receipts()
    paths: dict[str, Receipts] = {"hub": hub_receipts}
    tasks = [asyncio.create_task(_hub(bench, operation_id, hub_receipts, offsets))]
    tasks += [
        asyncio.create_task(_hub(bench, operation_id, hub_receipts)) for _ in range(count - 1)
    ]
    if all_paths:
        paths["gateway SSE"] = Receipts()
        tasks.append(asyncio.create_task(_sse(bench, operation_id, paths["gateway SSE"])))
        paths["workflow BFF WebSocket"] = Receipts()
        subscription = await WsSubscription.open(
            bench.stack.url("bff_workflow"), bench.token, WS_QUERY, {"id": operation_id}
        )
        tasks.append(asyncio.create_task(_ws(subscription, paths["workflow BFF WebSocket"])))
    await _all_first(paths.values(), 15)
    await _until(lambda: hub_receipts.ready >= count, 15)
    await asyncio.sleep(0.3)
    t0 = time.time()
    reads0 = bench.hub.reads(operation_id)
    await asyncio.sleep(seconds)
    t1 = time.time()
    reads1 = bench.hub.reads(operation_id)
    await asyncio.sleep(GRACE_SECONDS)
    await _stop(bench, operation_id, tasks)
    level: dict[str, Any] = {
        "subscribers": count,
        "seconds": round(t1 - t0, 3),
        "reads_per_second": round((reads1 - reads0) / (t1 - t0), 2),
        "paths": {},
    }
    for name, receipts in paths.items():
        from_done, from_at = receipts.window(t0, t1, offsets)
        level["paths"][name] = {
            "from_done": Dist.of(from_done).json(),
            "from_at": Dist.of(from_at).json(),
        }
    return level


async def _hub_memory(bench: Bench, count: int) -> None:
    """Python heap per open hub subscription (a subscriber task reading it included)."""
    operation_id = await _start(bench, FAST_STEPS, 20)
    receipts = Receipts()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(_hub(bench, operation_id, receipts)) for _ in range(count)]
    await _until(lambda: receipts.ready >= count, 15)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await _stop(bench, operation_id, tasks)
    per = (after - before) / count
    bench.results["live_progress"]["hub_bytes_per_subscription"] = round(per)
    bench.row(
        SECTION,
        f"memory per open hub subscription ({count} open, tracemalloc)",
        f"{per / 1024:.1f} KiB",
    )


async def _fanout(bench: Bench, kind: str, count: int) -> None:
    """``count`` subscriptions to one operation through a server process: its RSS growth, and
    delivery latency while they are open (about one step a second)."""
    process = "bff-workflow" if kind == "ws" else "gateway"
    pid = bench.stack.procs[process].pid
    seconds = bench.profile.progress_seconds
    operation_id = await _start(bench, SLOW_STEPS, seconds + 60)
    offsets: dict[int, float] = {}
    # One hub subscriber in this process on the same operation: the same polling cadence
    # without the fan-out, for reference.
    reference = Receipts()
    tasks = [asyncio.create_task(_hub(bench, operation_id, reference, offsets))]
    receipts = Receipts()
    rss_before = rss_kb(pid)
    gate = asyncio.Semaphore(50)
    opened = 0
    failures: list[str] = []

    async def open_one() -> None:
        nonlocal opened
        async with gate:
            try:
                if kind == "ws":
                    subscription = await WsSubscription.open(
                        bench.stack.url("bff_workflow"), bench.token, WS_QUERY, {"id": operation_id}
                    )
                    tasks.append(asyncio.create_task(_ws(subscription, receipts)))
                else:
                    tasks.append(asyncio.create_task(_sse(bench, operation_id, receipts)))
                opened += 1
            except Exception as error:  # reported, not fatal
                failures.append(f"{type(error).__name__}: {error}")

    started = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(count)))
    await _until(lambda: receipts.ready >= opened, 30)
    open_seconds = time.monotonic() - started
    await asyncio.sleep(0.5)
    rss_open = rss_kb(pid)
    grace = bench.profile.fanout_grace
    cpu = CpuWindow({process: pid}).start()
    t0 = time.time()
    await asyncio.sleep(seconds)
    t1 = time.time()
    cpu.stop()
    await asyncio.sleep(grace)
    rss_peak = max(rss_open, rss_kb(pid))
    await _stop(bench, operation_id, tasks)
    from_done, _ = receipts.window(t0, t1, offsets)
    d = Dist.of(from_done)
    ref = Dist.of(reference.window(t0, t1, offsets)[0])
    steps_in_window = sum(1 for done in offsets.values() if t0 <= done <= t1)
    expected = steps_in_window * opened
    kib_each = (rss_open - rss_before) / max(opened, 1)
    per_1000_mb = kib_each * 1000 / 1024
    label = "workflow BFF graphql-transport-ws" if kind == "ws" else "gateway SSE"
    noun = "WebSocket subscriptions" if kind == "ws" else "SSE streams"
    bench.results.setdefault("fanout", {})[kind] = {
        "process": process,
        "requested": count,
        "opened": opened,
        "failures": failures[:5],
        "seconds_to_open": round(open_seconds, 2),
        "rss_before_kb": rss_before,
        "rss_open_kb": rss_open,
        "rss_peak_kb": rss_peak,
        "rss_mb_per_1000": round(per_1000_mb, 1),
        "delivery_from_done": d.json(),
        "reference_one_hub_subscriber": ref.json(),
        "deliveries_expected": expected,
        "deliveries_within_grace": len(from_done),
        "grace_seconds": grace,
        "server_cpu_percent_in_window": cpu.percent()[process],
        "events_per_second_per_subscriber": round(2000 / (sum(SLOW_STEPS) / len(SLOW_STEPS)), 2),
    }
    bench.row(
        "6 memory",
        f"{process}: RSS per 1000 open {noun} ({opened} opened)",
        f"{per_1000_mb:.0f} MiB ({kib_each:.0f} KiB each)",
    )
    bench.row(
        SECTION,
        f"{label}, {opened} subscribers, ~2 events/s: delivery p50 / p99",
        f"{ms(d.p50)} / {ms(d.p99)} ({d.n} of {expected} deliveries within "
        f"{grace:.0f} s; {process} CPU {cpu.percent()[process]:.0f}% of a core; one hub "
        f"subscriber, same operation: {ms(ref.p50)} / {ms(ref.p99)})",
    )
    if failures:
        bench.notes.append(f"5: {len(failures)} {kind} subscriptions failed: {failures[0]}")


async def _all_first(receipts: Any, within: float) -> None:
    await asyncio.wait_for(asyncio.gather(*(r.first.wait() for r in receipts)), within)


async def _until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
