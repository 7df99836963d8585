"""httpx client for the API gateway: auth and correlation forwarding, timeouts, retries for
idempotent calls, a circuit breaker per gateway service, and a tenant- and user-scoped cache
(Redis or in-memory) with tag invalidation that never fails a query when it is down."""

from gateway_client.cache import (
    Cache,
    CacheMetrics,
    CacheStamp,
    MemoryCache,
    RedisCache,
    ResilientCache,
    cache_from_settings,
)
from gateway_client.client import GatewayClient, GatewayMetrics, build_path
from gateway_client.errors import (
    FieldError,
    GatewayBadRequest,
    GatewayConflict,
    GatewayError,
    GatewayForbidden,
    GatewayNotFound,
    GatewayRateLimited,
    GatewayServerError,
    GatewayUnauthorized,
    GatewayUnavailable,
    error_from_response,
)
from gateway_client.keys import CacheKey, CacheScope, tag, tenant_tag

__all__ = [
    "Cache",
    "CacheKey",
    "CacheMetrics",
    "CacheScope",
    "CacheStamp",
    "FieldError",
    "GatewayBadRequest",
    "GatewayClient",
    "GatewayConflict",
    "GatewayError",
    "GatewayForbidden",
    "GatewayMetrics",
    "GatewayNotFound",
    "GatewayRateLimited",
    "GatewayServerError",
    "GatewayUnauthorized",
    "GatewayUnavailable",
    "MemoryCache",
    "RedisCache",
    "ResilientCache",
    "build_path",
    "cache_from_settings",
    "error_from_response",
    "tag",
    "tenant_tag",
]
