"""2. BFF overhead: a BFF query answered from its cache vs a plain Strawberry query of the same
shape returning constant data vs a plain Starlette endpoint returning the same bytes vs the
direct gateway call the BFF query replaces.

The BFF query is the bench subgraph's ``profile`` on the product's BFF kit (JWT verified per
request, permissions, limits, metrics, error masking, federation schema) reading through the
gateway client's cache. Variants run in interleaved blocks; each block's CPU time is read from
the kernel for the processes that serve it, so both latency and server CPU per request are
compared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.client import HttpConnection, HttpError, graphql_body
from bench.context import Bench, ms, ratio, safe_ratio
from bench.graph import PROFILE_SELECTION
from bench.stack import ALICE
from bench.stats import CpuWindow, Dist

SECTION = "2 BFF overhead"
GOAL_RATIO = 1.3
QUERY = f"query Profile($id: ID!) {{ profile(id: $id) {{ {PROFILE_SELECTION} }} }}"
QUERY_REDIS = f"query Profile($id: ID!) {{ profileRedis(id: $id) {{ {PROFILE_SELECTION} }} }}"


@dataclass
class Variant:
    label: str
    call: Callable[[], Awaitable[None]]
    servers: list[str]
    latencies: list[float] = field(default_factory=list)
    cpu_ns: int = 0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_ns / 1000 / len(self.latencies) if self.latencies else float("nan")


async def measure(bench: Bench) -> None:
    stack = bench.stack
    variables = {"id": ALICE.user_id}
    gql_headers = {"Content-Type": "application/json", **bench.auth}
    plain_headers = {"Content-Type": "application/json"}
    connections: list[HttpConnection] = []

    def connection(url: str) -> HttpConnection:
        connections.append(HttpConnection(url))
        return connections[-1]

    def post(
        url: str, path: str, query: str, headers: dict[str, str]
    ) -> Callable[[], Awaitable[None]]:
        conn = connection(url)
        body = graphql_body(query, variables)

        async def call() -> None:
            reply = await conn.request("POST", path, body=body, headers=headers)
            if reply.status != 200 or b'"errors"' in reply.body:
                raise HttpError(f"{url}{path}: {reply.status} {reply.body[:300]!r}")

        return call

    def get(url: str, path: str, headers: dict[str, str]) -> Callable[[], Awaitable[None]]:
        conn = connection(url)

        async def call() -> None:
            reply = await conn.request("GET", path, headers=headers)
            if reply.status != 200:
                raise HttpError(f"{url}{path}: {reply.status}")

        return call

    # The BFF's own answer is what the plain endpoints return, byte for byte.
    bff = stack.url("bff_bench")
    probe = connection(bff)
    reply = await probe.request(
        "POST", "/graphql", body=graphql_body(QUERY, variables), headers=gql_headers
    )
    if reply.status != 200 or b'"errors"' in reply.body:
        raise HttpError(f"bench BFF profile query failed: {reply.status} {reply.body[:300]!r}")
    profile = json.loads(reply.body)["data"]["profile"]
    snake = _snake_profile(profile)
    setup = connection(stack.url("plain"))
    await setup.post_json("/configure", {"profile": snake, "body": reply.body.decode()})
    plain = stack.url("plain")
    same = await connection(plain).request(
        "POST", "/graphql", body=graphql_body(QUERY, variables), headers=plain_headers
    )
    identical = same.body == reply.body

    variants = [
        Variant("plain Starlette JSON, same bytes", get(plain, "/json", {}), ["plain"]),
        Variant(
            "plain Strawberry, constant (parser+validation caches)",
            post(plain, "/graphql", QUERY, plain_headers),
            ["plain"],
        ),
        Variant(
            "plain Strawberry, constant (no caches)",
            post(plain, "/graphql-nocache", QUERY, plain_headers),
            ["plain"],
        ),
        Variant(
            "BFF schema kit (graph.schema), constant, no auth",
            post(plain, "/graphql-kit", QUERY, plain_headers),
            ["plain"],
        ),
        Variant(
            "BFF query from cache (in-memory, dev default)",
            post(bff, "/graphql", QUERY, gql_headers),
            ["bff-bench"],
        ),
    ]
    if stack.redis_url:
        variants.append(
            Variant(
                "BFF query from cache (Redis)",
                post(bff, "/graphql", QUERY_REDIS, gql_headers),
                ["bff-bench", "redis"],
            )
        )
    variants.append(
        Variant(
            "direct gateway call it replaces",
            get(stack.url("gateway"), f"/api/user/users/{ALICE.user_id}", bench.auth),
            ["gateway", "user-server"],
        )
    )
    for variant in variants:  # warm every path (the Redis entry is filled here)
        for _ in range(20):
            await variant.call()

    for _ in range(bench.profile.bff_rounds):
        for variant in variants:
            window = CpuWindow(stack.pids(variant.servers)).start()
            for _ in range(bench.profile.bff_block):
                started = time.perf_counter()
                await variant.call()
                variant.latencies.append((time.perf_counter() - started) * 1000)
            window.stop()
            variant.cpu_ns += sum(window.used_ns.values())
    for conn in connections:
        await conn.close()

    by_label = {v.label: v for v in variants}
    baseline = by_label["plain Strawberry, constant (parser+validation caches)"]
    cached = by_label["BFF query from cache (in-memory, dev default)"]
    base_d, cached_d = Dist.of(baseline.latencies), Dist.of(cached.latencies)
    latency_ratio = safe_ratio(cached_d.p50, base_d.p50)
    cpu_ratio = safe_ratio(cached.cpu_us_per_request, baseline.cpu_us_per_request)
    bench.results["bff_overhead"] = {
        "query": QUERY,
        "client": f"one connection per variant, sequential, {bench.profile.bff_block}-request "
        "blocks interleaved",
        "response_bytes": len(reply.body),
        "plain_strawberry_same_bytes": identical,
        "variants": [
            {
                "label": v.label,
                "servers": v.servers,
                "latency": Dist.of(v.latencies).json(),
                "server_cpu_us_per_request": round(v.cpu_us_per_request, 1),
            }
            for v in variants
        ],
        "cached_bff_vs_plain_strawberry_p50": round(latency_ratio, 3),
        "cached_bff_vs_plain_strawberry_cpu": round(cpu_ratio, 3),
    }
    for v in variants:
        d = Dist.of(v.latencies)
        bench.row(
            SECTION,
            f"{v.label}: p50 / p99, server CPU/request",
            f"{ms(d.p50)} / {ms(d.p99)}, {v.cpu_us_per_request:.0f} µs",
        )
    bench.row(
        SECTION,
        "cached BFF query vs plain Strawberry: latency p50",
        ratio(latency_ratio),
        f"<= {GOAL_RATIO}x",
        latency_ratio <= GOAL_RATIO,
    )
    bench.row(
        SECTION,
        "cached BFF query vs plain Strawberry: server CPU/request",
        ratio(cpu_ratio),
        f"<= {GOAL_RATIO}x",
        cpu_ratio <= GOAL_RATIO,
    )
    if not identical:
        bench.notes.append("2: the plain Strawberry answer differed from the BFF's bytes")


def _snake_profile(profile: dict[str, object]) -> dict[str, object]:
    names = {
        "userId": "user_id",
        "displayName": "display_name",
        "tenantId": "tenant_id",
    }
    return {names.get(key, key): value for key, value in profile.items()}
