"""The BFF's answer cache: Redis when configured, in-memory otherwise, always behind
:class:`ResilientCache` so a cache failure costs a gateway call, never a failed query.

Entries carry tags; a mutation invalidates tags, which deletes every entry holding them.
A read-through fill takes a :meth:`Cache.stamp` of its tags before calling the gateway and
hands it to :meth:`Cache.set`: when one of the tags was invalidated in between (a mutation
that finished while the read was in flight) the fill is dropped, so a stale answer is never
stored after the invalidation that should have removed it.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adx.logging import get_logger
from adx.settings import Settings

DEFAULT_PREFIX = "adx:bff:"

# An opaque token from Cache.stamp(): (tag or marker, version) pairs.
CacheStamp = tuple[tuple[str, int], ...]


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float,
        tags: Collection[str] = (),
        *,
        stamp: CacheStamp | None = None,
    ) -> bool:
        """Stores the value under the tags; with ``stamp``, only if none of the stamped
        tags was invalidated since. True when stored."""

    async def invalidate_tags(self, tags: Collection[str]) -> int:
        """Deletes every entry holding one of the tags; returns how many were deleted."""

    async def stamp(self, tags: Collection[str]) -> CacheStamp | None:
        """The tags' invalidation versions now, for a later conditional set (None: unknown,
        so the caller should not store)."""

    async def aclose(self) -> None: ...


def _ttl_ms(ttl_seconds: float) -> int:
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    return max(1, round(ttl_seconds * 1000))


# In-memory -------------------------------------------------------------------------------


@dataclass
class _Entry:
    value: bytes
    expires_at: float
    tags: frozenset[str]


class MemoryCache:
    """A bounded LRU with per-entry TTL and a tag index, for one process (dev, tests).

    Its stamp is one generation counter for all tags: any invalidation drops the fills in
    flight, which costs a little hit rate and keeps the state bounded."""

    def __init__(
        self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float,
        tags: Collection[str] = (),
        *,
        stamp: CacheStamp | None = None,
    ) -> bool:
        ttl_ms = _ttl_ms(ttl_seconds)
        if stamp is not None and stamp != self._current_stamp():
            return False
        self._remove(key)
        self._entries[key] = _Entry(value, self._clock() + ttl_ms / 1000, frozenset(tags))
        for name in tags:
            self._tags.setdefault(name, set()).add(key)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._remove(oldest)
        return True

    async def invalidate_tags(self, tags: Collection[str]) -> int:
        self._generation += 1
        now = self._clock()
        deleted = 0
        for name in tags:
            for key in self._tags.pop(name, set()):
                entry = self._entries.get(key)
                if entry is not None:
                    if entry.expires_at > now:
                        deleted += 1
                    self._remove(key)
        return deleted

    async def stamp(self, tags: Collection[str]) -> CacheStamp | None:
        return self._current_stamp()

    async def aclose(self) -> None:
        self._entries.clear()
        self._tags.clear()

    def _current_stamp(self) -> CacheStamp:
        return (("*", self._generation),)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for name in entry.tags:
            keys = self._tags.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[name]


# Redis -----------------------------------------------------------------------------------

# KEYS: entry, n tag sets, m version keys. ARGV: value, ttl ms, n, m, m expected versions.
# Atomic: the version check, the value and its tag memberships happen together. A tag set
# lives as long as its longest-lived member.
_SET_SCRIPT = """
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
for i = 1, m do
  local current = redis.call('GET', KEYS[1 + n + i]) or '0'
  if current ~= ARGV[4 + i] then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 1, n do
  redis.call('SADD', KEYS[1 + i], KEYS[1])
  if redis.call('PTTL', KEYS[1 + i]) < ttl then
    redis.call('PEXPIRE', KEYS[1 + i], ttl)
  end
end
return 1
"""

# KEYS: n tag sets, n version keys. ARGV: n, version ttl ms. Deleting members and the set in
# one script means no entry can join a tag between reading its members and deleting them.
_INVALIDATE_SCRIPT = """
local n = tonumber(ARGV[1])
local deleted = 0
for i = 1, n do
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    deleted = deleted + redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], ARGV[2])
end
return deleted
"""


class RedisCache:
    """Entries at ``<prefix>e:<key>``, tag sets of entry keys at ``<prefix>t:<tag>``, tag
    versions at ``<prefix>v:<tag>``. Needs one Redis (not Cluster): the scripts touch
    entries named in tag sets. Owns the client: :meth:`aclose` closes it."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        version_ttl_seconds: float = 3600.0,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        # A version must outlive any read in flight; after it expires a stamp taken before
        # no longer matches (the version went back to 0), so the fill is dropped: safe.
        self._version_ttl_ms = _ttl_ms(version_ttl_seconds)
        self._set_script = client.register_script(_SET_SCRIPT)
        self._invalidate_script = client.register_script(_INVALIDATE_SCRIPT)

    @property
    def prefix(self) -> str:
        return self._prefix

    def entry_key(self, key: str) -> str:
        return f"{self._prefix}e:{key}"

    def tag_key(self, tag: str) -> str:
        return f"{self._prefix}t:{tag}"

    def version_key(self, tag: str) -> str:
        return f"{self._prefix}v:{tag}"

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self.entry_key(key))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float,
        tags: Collection[str] = (),
        *,
        stamp: CacheStamp | None = None,
    ) -> bool:
        ttl_ms = _ttl_ms(ttl_seconds)
        tag_list = list(dict.fromkeys(tags))
        checked = list(stamp or ())
        keys = [
            self.entry_key(key),
            *(self.tag_key(t) for t in tag_list),
            *(self.version_key(t) for t, _ in checked),
        ]
        args: list[bytes | str | int] = [
            value,
            ttl_ms,
            len(tag_list),
            len(checked),
            *(str(v) for _, v in checked),
        ]
        stored = await self._set_script(keys=keys, args=args)
        return bool(stored)

    async def invalidate_tags(self, tags: Collection[str]) -> int:
        tag_list = list(dict.fromkeys(tags))
        if not tag_list:
            return 0
        keys = [*(self.tag_key(t) for t in tag_list), *(self.version_key(t) for t in tag_list)]
        deleted = await self._invalidate_script(
            keys=keys, args=[len(tag_list), self._version_ttl_ms]
        )
        return int(deleted)

    async def stamp(self, tags: Collection[str]) -> CacheStamp | None:
        tag_list = list(dict.fromkeys(tags))
        if not tag_list:
            return ()
        versions = await self._redis.mget([self.version_key(t) for t in tag_list])
        return tuple((t, int(v or 0)) for t, v in zip(tag_list, versions, strict=True))

    async def aclose(self) -> None:
        await self._redis.aclose()


# Resilience ------------------------------------------------------------------------------


class _Logger(Protocol):
    def info(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: str, *args: Any, **kw: Any) -> Any: ...


class CacheMetrics:
    """One set of cache metrics per registry (so a second cache or a test's own registry
    never registers the same names twice)."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, CacheMetrics]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "bff_cache_requests_total",
            "Cache reads by result (hit, miss, error, bypass: skipped while the cache is down)",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "bff_cache_errors_total",
            "Cache operations that failed and were treated as a miss or a no-op",
            ["op"],
            registry=registry,
        )
        self.outages = Counter(
            "bff_cache_outages_total",
            "Times the cache became unavailable",
            registry=registry,
        )
        self.degraded = Gauge(
            "bff_cache_degraded",
            "1 while the cache is unavailable and queries go to the gateway",
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> CacheMetrics:
        registry = REGISTRY if registry is None else registry
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


class ResilientCache:
    """Wraps a cache so that no cache error reaches the caller.

    A failing operation is counted (``bff_cache_errors_total{op}``) and answers as a miss
    (get), not stored (set), unknown (stamp) or 0 (invalidate). The first failure of an
    outage is logged, and the recovery; the calls between are not. For ``bypass_seconds``
    after a failure the cache is not tried at all, so a hung Redis does not add its timeout
    to every query. Tags whose invalidation failed are kept (up to ``max_pending_tags``) and
    invalidated again before the cache answers anything after it comes back: entries that
    survived the outage must not be served stale."""

    def __init__(
        self,
        inner: Cache,
        *,
        backend: str = "redis",
        registry: CollectorRegistry | None = None,
        bypass_seconds: float = 1.0,
        max_pending_tags: int = 10_000,
        logger: _Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.backend = backend
        self.metrics = CacheMetrics.for_registry(registry)
        self._bypass_seconds = bypass_seconds
        self._max_pending = max_pending_tags
        self._log: _Logger = logger or get_logger(__name__)
        self._clock = clock
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._pending: dict[str, None] = {}  # ordered set of tags still to invalidate

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    @property
    def pending_invalidations(self) -> tuple[str, ...]:
        return tuple(self._pending)

    async def get(self, key: str) -> bytes | None:
        if not await self._usable():
            self.metrics.requests.labels("bypass").inc()
            return None
        try:
            value = await self.inner.get(key)
        except Exception as error:
            self._failed("get", error)
            self.metrics.requests.labels("error").inc()
            return None
        self._succeeded()
        self.metrics.requests.labels("miss" if value is None else "hit").inc()
        return value

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float,
        tags: Collection[str] = (),
        *,
        stamp: CacheStamp | None = None,
    ) -> bool:
        _ttl_ms(ttl_seconds)  # a bad argument is the caller's bug, not a cache outage
        if not await self._usable():
            return False
        try:
            stored = await self.inner.set(key, value, ttl_seconds, tags, stamp=stamp)
        except Exception as error:
            self._failed("set", error)
            return False
        self._succeeded()
        return stored

    async def invalidate_tags(self, tags: Collection[str]) -> int:
        if not tags:
            return 0
        if not await self._usable():
            self._remember(tags)
            return 0
        try:
            deleted = await self.inner.invalidate_tags(tags)
        except Exception as error:
            self._failed("invalidate", error)
            self._remember(tags)
            return 0
        self._succeeded()
        return deleted

    async def stamp(self, tags: Collection[str]) -> CacheStamp | None:
        if not await self._usable():
            return None
        try:
            stamp = await self.inner.stamp(tags)
        except Exception as error:
            self._failed("stamp", error)
            return None
        self._succeeded()
        return stamp

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        except Exception as error:  # closing a dead connection is not worth a failure
            self._log.info("cache.close_failed", backend=self.backend, error=type(error).__name__)

    async def _usable(self) -> bool:
        """False while bypassing after a failure, or while earlier invalidations cannot be
        applied (the cache could still hold what they should have removed)."""
        if self._down_since is not None and self._clock() < self._retry_at:
            return False
        if not self._pending:
            return True
        tags = list(self._pending)
        try:
            await self.inner.invalidate_tags(tags)
        except Exception as error:
            self._failed("invalidate", error)
            return False
        for name in tags:
            self._pending.pop(name, None)
        return True

    def _remember(self, tags: Collection[str]) -> None:
        for name in tags:
            self._pending.pop(name, None)
            self._pending[name] = None
        while len(self._pending) > self._max_pending:
            dropped = next(iter(self._pending))
            del self._pending[dropped]
            self._log.warning("cache.invalidation_dropped", backend=self.backend, tag=dropped)

    def _failed(self, op: str, error: Exception) -> None:
        self.metrics.errors.labels(op).inc()
        self._retry_at = self._clock() + self._bypass_seconds
        if self._down_since is None:
            self._down_since = self._clock()
            self.metrics.outages.inc()
            self.metrics.degraded.set(1)
            self._log.warning(
                "cache.unavailable",
                backend=self.backend,
                op=op,
                error=type(error).__name__,
                message=str(error)[:300],
            )

    def _succeeded(self) -> None:
        if self._down_since is None:
            return
        outage = self._clock() - self._down_since
        self._down_since = None
        self.metrics.degraded.set(0)
        self._log.info("cache.recovered", backend=self.backend, outage_seconds=round(outage, 3))


def cache_from_settings(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    prefix: str = DEFAULT_PREFIX,
    timeout_seconds: float = 0.5,
) -> ResilientCache:
    """Redis at ``settings.redis_url``, else an in-memory cache (one process only: another
    BFF instance would not see this one's invalidations)."""
    if settings.redis_url:
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            # One quick reconnect, no backoff: a slow cache must not slow the query down.
            retry=Retry(NoBackoff(), 1),
        )
        return ResilientCache(RedisCache(client, prefix=prefix), registry=registry)
    if settings.is_production:
        get_logger(__name__).warning(
            "cache.in_memory",
            reason="ADX_REDIS_URL is not set: each BFF process caches and invalidates alone",
        )
    return ResilientCache(MemoryCache(), backend="memory", registry=registry)
