from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from gateway_client import GatewayClient, MemoryCache, RedisCache
from tests.gateway_client.standin import LogRecorder, StandInGateway, make_client
from tests.support.http import serve_app
from tests.support.servers import RedisServer


@pytest.fixture
async def gateway() -> AsyncIterator[StandInGateway]:
    stand_in = StandInGateway()
    async with serve_app(stand_in.app()) as url:
        stand_in.url = url
        try:
            yield stand_in
        finally:
            stand_in.release.set()
            stand_in.gate.set()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def logs() -> LogRecorder:
    return LogRecorder()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_raw(redis_server: RedisServer, prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the session Redis, to look at what the cache wrote."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis_cache(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(aioredis.Redis.from_url(redis_server.url), prefix=prefix)
    try:
        yield cache
    finally:
        await cache.aclose()


@pytest.fixture(params=["memory", "redis"])
async def any_cache(
    request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str
) -> AsyncIterator[MemoryCache | RedisCache]:
    cache: MemoryCache | RedisCache
    if request.param == "memory":
        cache = MemoryCache()
    else:
        cache = RedisCache(aioredis.Redis.from_url(redis_server.url), prefix=prefix)
    try:
        yield cache
    finally:
        if isinstance(cache, RedisCache):
            async with aioredis.Redis.from_url(redis_server.url) as client:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
        await cache.aclose()


@pytest.fixture
async def client(
    gateway: StandInGateway, registry: CollectorRegistry, logs: LogRecorder
) -> AsyncIterator[GatewayClient]:
    async with make_client(gateway, registry, logs) as gateway_client:
        yield gateway_client
