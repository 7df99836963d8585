"""3. Parallel aggregation: the read workflows of a dashboard started in parallel vs the
slowest one alone vs all of them one after another, side by side, each through a BFF.

The user BFF's ``dashboard`` is measured as it is when that BFF exists (``bffs/user``). The
equivalent measured always is the bench subgraph's ``aggregate``: ``WorkflowOperations.execute``
of the read workflows whose workers run (get_user_profile, get_recent_activity,
get_tenant_data, get_recent_files).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.client import HttpConnection, HttpError, graphql
from bench.context import Bench, ms, ratio, safe_ratio
from bench.loops import interleaved
from bench.stack import ALICE
from bench.stats import Dist

SECTION = "3 parallel aggregation"
COLD = "dashboard (bffs/user), cold: fresh cache key per call"
WARM = "dashboard (bffs/user), warm: from its cache"
GOAL_RATIO = 1.3
AGGREGATE = (
    "query Aggregate($parts: [String!]!, $parallel: Boolean!) "
    "{ aggregate(parts: $parts, parallel: $parallel) { totalMs parts { type ms completed } } }"
)


async def measure(bench: Bench) -> None:
    parts = bench.parts
    if not parts:
        bench.notes.append("3: no read workflow answered during warm-up; nothing to aggregate")
        return
    bff = HttpConnection(bench.stack.url("bff_bench"))

    def aggregate(chosen: list[str], parallel: bool) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            document = await graphql(
                bff, AGGREGATE, {"parts": chosen, "parallel": parallel}, token=bench.token
            )
            if not all(p["completed"] for p in document["data"]["aggregate"]["parts"]):
                raise RuntimeError(f"a part did not complete: {document}")

        return call

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        f"aggregate: {len(parts)} parts in parallel": aggregate(parts, True),
    }
    for part in parts:
        variants[f"aggregate: {part} alone"] = aggregate([part], True)
    variants[f"aggregate: {len(parts)} parts one after another"] = aggregate(parts, False)
    dashboard_conn = HttpConnection(bench.stack.url("bff_user"))
    dashboard_errors: list[str] = []
    if bench.dashboard_query is not None:
        query = bench.dashboard_query
        # The dashboard caches its parts per user, tenant and roles: a role no one else has
        # gives every cold call a key of its own (its workflows run), while the warm call
        # repeats one token (answered from that cache).
        cold_tokens = [
            bench.stack.token(ALICE.model_copy(update={"roles": (*ALICE.roles, f"bench{i}")}))
            for i in range(bench.profile.aggregation_rounds)
        ]

        def dashboard(tokens: list[str]) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                token = tokens.pop() if len(tokens) > 1 else tokens[0]
                try:
                    await graphql(dashboard_conn, query, token=token)
                except HttpError as error:  # a part over its budget: counted, not fatal
                    dashboard_errors.append(str(error)[:300])

            return call

        variants[COLD] = dashboard(cold_tokens)
        variants[WARM] = dashboard([bench.token])

    samples = await interleaved(variants, bench.profile.aggregation_rounds)
    await bff.close()
    await dashboard_conn.close()
    dists = {name: Dist.of(values) for name, values in samples.items()}
    alone = {part: dists[f"aggregate: {part} alone"] for part in parts}
    slowest = max(alone, key=lambda part: alone[part].p50)
    parallel_d = dists[f"aggregate: {len(parts)} parts in parallel"]
    sequential_d = dists[f"aggregate: {len(parts)} parts one after another"]
    parallel_ratio = safe_ratio(parallel_d.p50, alone[slowest].p50)
    bench.results["parallel_aggregation"] = {
        "path": "bench subgraph `aggregate` (WorkflowOperations.execute per part) over HTTP",
        "parts": parts,
        "slowest_part": slowest,
        "latency": {name: d.json() for name, d in dists.items()},
        "parallel_vs_slowest_p50": round(parallel_ratio, 3),
        "sequential_vs_slowest_p50": round(safe_ratio(sequential_d.p50, alone[slowest].p50), 3),
    }
    for name, d in dists.items():
        bench.row(SECTION, f"{name}: p50 / p99", f"{ms(d.p50)} / {ms(d.p99)}")
    bench.row(
        SECTION,
        f"aggregate: parallel vs slowest part alone ({slowest}): p50",
        ratio(parallel_ratio),
        f"<= {GOAL_RATIO}x",
        parallel_ratio <= GOAL_RATIO,
    )
    bench.row(
        SECTION,
        "aggregate: one after another vs slowest part alone: p50",
        ratio(safe_ratio(sequential_d.p50, alone[slowest].p50)),
    )
    if bench.dashboard_query is not None:
        d = dists[COLD]
        dash_ratio = safe_ratio(d.p50, alone[slowest].p50)
        report = bench.results["parallel_aggregation"]
        report["dashboard_query"] = bench.dashboard_query
        report["dashboard_cold_vs_slowest_p50"] = round(dash_ratio, 3)
        report["dashboard_errors"] = dashboard_errors[:5]
        bench.row(
            SECTION,
            "dashboard (bffs/user), cold, vs slowest part alone: p50",
            ratio(dash_ratio),
            f"<= {GOAL_RATIO}x",
            dash_ratio <= GOAL_RATIO,
        )
        if dashboard_errors:
            bench.notes.append(
                f"3: {len(dashboard_errors)} dashboard calls had errors: {dashboard_errors[0]}"
            )
