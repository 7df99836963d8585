"""Rate limits per user and per tenant (``limits``; Redis-backed when configured, so every
gateway instance shares the counts), answered with 429 and ``Retry-After``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from adx.settings import Settings

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    scope: str = ""
    retry_after: int = 0


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                settings.redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                key_prefix="adx-gateway",
            )
        else:
            storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._per_user: RateLimitItem = parse(settings.gateway_rate_limit_user)
        self._per_tenant: RateLimitItem = parse(settings.gateway_rate_limit_tenant)

    async def hit(self, user_key: str, tenant_id: str | None) -> Verdict:
        checks = [("user", self._per_user, user_key)]
        if tenant_id is not None:
            checks.append(("tenant", self._per_tenant, tenant_id))
        for scope, item, key in checks:
            try:
                allowed = await self._limiter.hit(item, scope, key)
            except Exception as error:  # the limiter's store down must not take the API down
                log.warning("ratelimit.unavailable", error=type(error).__name__)
                return Verdict(True)
            if not allowed:
                stats = await self._limiter.get_window_stats(item, scope, key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                return Verdict(False, scope, retry_after)
        return Verdict(True)
