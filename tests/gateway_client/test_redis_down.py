"""When Redis is down the BFF keeps answering from the gateway: the failure is counted and
logged once per outage, never raised; after it comes back the cache serves again, and an
invalidation that could not be applied during the outage is applied before anything stale
is served. Each test runs its own Redis (or its own cut-able link to Redis)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway_client import GatewayClient, RedisCache, ResilientCache, tag
from tests.gateway_client.standin import ALICE, LogRecorder, StandInGateway, make_client
from tests.gateway_client.tcp_proxy import TcpProxy
from tests.support.servers import RedisServer, run_redis, wait_for_port

pytestmark = pytest.mark.timeout(60)

PROFILE = "/api/user/profile"
PROFILE_TAG = tag(ALICE, "profile")


def quick_redis(url: str) -> aioredis.Redis:
    """Settings like cache_from_settings': short timeouts, no retry backoff."""
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=0.3, socket_timeout=0.3, retry=Retry(NoBackoff(), 0)
    )


async def read(client: GatewayClient) -> object:
    return await client.get_json(
        ALICE, PROFILE, token="t", cache_ttl=60, tags=[PROFILE_TAG], query_name="user.profile"
    )


def errors(registry: CollectorRegistry, op: str) -> float:
    return registry.get_sample_value("bff_cache_errors_total", {"op": op}) or 0.0


def requests(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("bff_cache_requests_total", {"result": result}) or 0.0


@contextmanager
def redis_on_port(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A fresh redis-server on a given port (to restart "the same" Redis)."""
    binary = shutil.which("redis-server")
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="adx-redis-again-") as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_reads_answer_from_the_gateway_while_redis_is_down(
    gateway: StandInGateway, logs: LogRecorder
) -> None:
    registry = CollectorRegistry()
    own: RedisServer
    with run_redis() as own:
        cache = ResilientCache(
            RedisCache(quick_redis(own.url), prefix="down:"),
            registry=registry,
            logger=logs,
            bypass_seconds=60,  # after the first failure, skip Redis for the rest of the test
        )
        async with make_client(gateway, registry, logs, cache=cache) as client:
            assert await read(client) == {"version": 0, "served": 1, "params": {}}
            await read(client)
            assert gateway.called("GET", PROFILE) == 1  # cached

            own.process.terminate()
            own.process.wait(timeout=10)

            answers = [await read(client) for _ in range(3)]
            assert [a["served"] for a in answers if isinstance(a, dict)] == [2, 3, 4]
            assert gateway.called("GET", PROFILE) == 4

            # A mutation still succeeds; its invalidation is kept for later.
            await client.send_json(
                ALICE, "PUT", PROFILE, token="t", json={}, invalidates=[PROFILE_TAG]
            )
            assert cache.pending_invalidations == (PROFILE_TAG,)

            # Counted: one real error, then the cache is bypassed without waiting on it.
            assert errors(registry, "get") == 1
            assert requests(registry, "error") == 1
            assert requests(registry, "bypass") == 2
            assert registry.get_sample_value("bff_cache_outages_total") == 1
            assert registry.get_sample_value("bff_cache_degraded") == 1
            # Logged once for the outage, not once per call.
            assert len(logs.named("cache.unavailable")) == 1
            assert logs.named("cache.unavailable")[0]["op"] == "get"
            await cache.aclose()


async def test_the_cache_serves_again_when_redis_restarts_on_the_same_port(
    gateway: StandInGateway, logs: LogRecorder
) -> None:
    registry = CollectorRegistry()
    with run_redis() as own:
        cache = ResilientCache(
            RedisCache(quick_redis(own.url), prefix="restart:"),
            registry=registry,
            logger=logs,
            bypass_seconds=0,
        )
        async with make_client(gateway, registry, logs, cache=cache) as client:
            await read(client)
            own.process.terminate()
            own.process.wait(timeout=10)

            await read(client)
            await read(client)
            assert gateway.called("GET", PROFILE) == 3
            assert errors(registry, "get") == 2  # no bypass window: every call tried Redis
            assert registry.get_sample_value("bff_cache_degraded") == 1

            with redis_on_port(own.port):
                await read(client)  # a miss (the new Redis is empty) that fills the cache
                await read(client)
                assert gateway.called("GET", PROFILE) == 4
                assert not cache.degraded
                assert registry.get_sample_value("bff_cache_degraded") == 0
                assert len(logs.named("cache.unavailable")) == 1
                assert len(logs.named("cache.recovered")) == 1
                await cache.aclose()


async def test_an_invalidation_missed_during_a_partition_is_applied_before_serving(
    gateway: StandInGateway, redis_server: RedisServer, logs: LogRecorder, prefix: str
) -> None:
    """Redis keeps its data while unreachable: the entry a mutation should have removed is
    still there afterwards, and must not be served."""
    registry = CollectorRegistry()
    link = TcpProxy(redis_server.port)
    await link.start()
    cache = ResilientCache(
        RedisCache(quick_redis(link.url), prefix=prefix),
        registry=registry,
        logger=logs,
        bypass_seconds=0,
    )
    try:
        async with make_client(gateway, registry, logs, cache=cache) as client:
            assert await read(client) == {"version": 0, "served": 1, "params": {}}

            await link.cut()
            await client.send_json(
                ALICE, "PUT", PROFILE, token="t", json={}, invalidates=[PROFILE_TAG]
            )
            assert errors(registry, "invalidate") == 1
            during = await read(client)
            assert isinstance(during, dict)
            assert during["version"] == 1

            await link.restore()
            after = await read(client)
            assert isinstance(after, dict)
            assert after["version"] == 1  # not the stale version 0 still stored in Redis
            assert cache.pending_invalidations == ()
            assert gateway.called("GET", PROFILE) == 3
            assert await read(client) == after  # and the cache works again
            assert gateway.called("GET", PROFILE) == 3
    finally:
        await link.cut()
        await cache.aclose()
        async with aioredis.Redis.from_url(redis_server.url) as raw:
            keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
            if keys:
                await raw.delete(*keys)
