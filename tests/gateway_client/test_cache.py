"""The two cache backends behave the same: get/set, TTL expiry, tag invalidation, and the
stamp that drops a fill racing an invalidation. Redis runs for real (session server, a
unique key prefix per test)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from adx.settings import Settings
from gateway_client import MemoryCache, RedisCache, ResilientCache, cache_from_settings
from tests.support.servers import RedisServer

pytestmark = pytest.mark.timeout(60)


async def test_set_then_get_returns_the_bytes(any_cache: MemoryCache | RedisCache) -> None:
    assert await any_cache.get("k1") is None
    assert await any_cache.set("k1", b'{"a": 1}', 60)
    assert await any_cache.get("k1") == b'{"a": 1}'
    assert await any_cache.get("k2") is None


async def test_set_replaces_the_value_and_its_tags(any_cache: MemoryCache | RedisCache) -> None:
    await any_cache.set("k1", b"one", 60, ["tag-a"])
    await any_cache.set("k1", b"two", 60, ["tag-b"])
    assert await any_cache.get("k1") == b"two"
    assert await any_cache.invalidate_tags(["tag-b"]) == 1
    assert await any_cache.get("k1") is None


async def test_entries_expire_after_their_ttl(any_cache: MemoryCache | RedisCache) -> None:
    await any_cache.set("short", b"s", 0.2)
    await any_cache.set("long", b"l", 60)
    assert await any_cache.get("short") == b"s"
    await asyncio.sleep(0.4)
    assert await any_cache.get("short") is None
    assert await any_cache.get("long") == b"l"


async def test_invalidating_a_tag_deletes_exactly_its_entries(
    any_cache: MemoryCache | RedisCache,
) -> None:
    await any_cache.set("profile", b"p", 60, ["t:acme:u:alice:profile"])
    await any_cache.set("both", b"b", 60, ["t:acme:u:alice:profile", "t:acme:teams"])
    await any_cache.set("teams", b"t", 60, ["t:acme:teams"])
    await any_cache.set("other", b"o", 60, ["t:acme:u:bob:profile"])

    deleted = await any_cache.invalidate_tags(["t:acme:u:alice:profile"])

    assert deleted == 2
    assert await any_cache.get("profile") is None
    assert await any_cache.get("both") is None
    assert await any_cache.get("teams") == b"t"
    assert await any_cache.get("other") == b"o"
    # Invalidating again finds nothing left; unknown tags are fine.
    assert await any_cache.invalidate_tags(["t:acme:u:alice:profile", "nope"]) == 0


async def test_a_fill_stamped_before_an_invalidation_is_dropped(
    any_cache: MemoryCache | RedisCache,
) -> None:
    tags = ["t:acme:u:alice:profile"]
    stamp = await any_cache.stamp(tags)
    assert stamp is not None
    # A mutation finishes while the read is still in flight ...
    await any_cache.invalidate_tags(tags)
    # ... so the read's (stale) answer must not be stored.
    assert not await any_cache.set("profile", b"stale", 60, tags, stamp=stamp)
    assert await any_cache.get("profile") is None

    fresh = await any_cache.stamp(tags)
    assert await any_cache.set("profile", b"fresh", 60, tags, stamp=fresh)
    assert await any_cache.get("profile") == b"fresh"


async def test_redis_layout_prefixed_keys_tag_sets_and_ttls(
    redis_cache: RedisCache, redis_raw: aioredis.Redis, prefix: str
) -> None:
    await redis_cache.set("k-short", b"v", 10, ["tag-x"])
    await redis_cache.set("k-long", b"v", 100, ["tag-x"])
    await redis_cache.set("k-shorter", b"v", 1, ["tag-x"])

    entry = f"{prefix}e:k-long"
    tag_set = f"{prefix}t:tag-x"
    assert await redis_raw.get(entry) == b"v"
    assert 90_000 < await redis_raw.pttl(entry) <= 100_000
    members = await redis_raw.smembers(tag_set)
    assert members == {f"{prefix}e:{k}".encode() for k in ("k-short", "k-long", "k-shorter")}
    # The tag set lives as long as its longest-lived entry, whatever the order of the sets.
    assert 90_000 < await redis_raw.pttl(tag_set) <= 100_000
    written = {key async for key in redis_raw.scan_iter(match=f"{prefix}*")}
    assert written == {*members, tag_set.encode()}

    assert await redis_cache.invalidate_tags(["tag-x"]) == 3
    assert await redis_raw.exists(entry, f"{prefix}e:k-short", tag_set) == 0
    assert await redis_raw.get(f"{prefix}v:tag-x") == b"1"
    assert await redis_raw.pttl(f"{prefix}v:tag-x") > 0


async def test_redis_cache_works_again_after_scripts_are_flushed(
    redis_cache: RedisCache, redis_raw: aioredis.Redis
) -> None:
    """A restarted Redis has no scripts loaded: EVALSHA falls back to loading them."""
    await redis_cache.set("k", b"v", 60, ["t"])
    await redis_raw.script_flush()
    assert await redis_cache.set("k2", b"v2", 60, ["t"])
    assert await redis_cache.invalidate_tags(["t"]) == 2


async def test_memory_cache_is_a_bounded_lru() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", 60, ["t"])
    await cache.set("b", b"2", 60, ["t"])
    assert await cache.get("a") == b"1"  # "a" is now the most recently used
    await cache.set("c", b"3", 60, ["t"])
    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1"
    assert await cache.get("c") == b"3"
    # The evicted entry left the tag index too.
    assert await cache.invalidate_tags(["t"]) == 2


async def test_memory_cache_expiry_follows_its_clock() -> None:
    now = [1000.0]
    cache = MemoryCache(clock=lambda: now[0])
    await cache.set("k", b"v", 30, ["t"])
    now[0] += 29.9
    assert await cache.get("k") == b"v"
    now[0] += 0.2
    assert await cache.get("k") is None
    assert await cache.invalidate_tags(["t"]) == 0


@pytest.mark.parametrize("ttl", [0, -1])
async def test_a_non_positive_ttl_is_rejected(
    any_cache: MemoryCache | RedisCache, ttl: int
) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await any_cache.set("k", b"v", ttl)


async def test_resilient_cache_counts_hits_and_misses(any_cache: MemoryCache | RedisCache) -> None:
    registry = CollectorRegistry()
    cache = ResilientCache(any_cache, registry=registry)
    await cache.get("k")
    await cache.set("k", b"v", 60)
    await cache.get("k")
    await cache.get("k")

    def sample(result: str) -> float | None:
        return registry.get_sample_value("bff_cache_requests_total", {"result": result})

    assert sample("hit") == 2
    assert sample("miss") == 1
    assert registry.get_sample_value("bff_cache_errors_total", {"op": "get"}) is None


async def test_cache_from_settings_picks_redis_or_memory(
    redis_server: RedisServer, prefix: str
) -> None:
    memory = cache_from_settings(Settings(redis_url=None), registry=CollectorRegistry())
    assert isinstance(memory.inner, MemoryCache)

    redis_backed = cache_from_settings(
        Settings(redis_url=redis_server.url), registry=CollectorRegistry(), prefix=prefix
    )
    try:
        assert isinstance(redis_backed.inner, RedisCache)
        assert await redis_backed.set("k", b"v", 5)
        assert await redis_backed.get("k") == b"v"
        assert await redis_backed.invalidate_tags(["none"]) == 0
    finally:
        async with aioredis.Redis.from_url(redis_server.url) as raw:
            await raw.delete(f"{prefix}e:k", f"{prefix}v:none")
        await redis_backed.aclose()
