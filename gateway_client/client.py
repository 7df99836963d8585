"""The BFFs' client for the API gateway.

Each call forwards the caller's token (``Authorization: Bearer``) and correlation id
(``X-Correlation-ID``), has a timeout, and passes a circuit breaker per gateway route prefix
(``/api/<service>``), so a failing service makes its calls fail fast without taking the
others down. Reads are retried on transient failures; writes only with an
``Idempotency-Key`` (or when the request provably never left: connection refused). Reads
with a ``cache_ttl`` are served read-through from a tenant- and user-scoped cache; writes
invalidate the tags they name.

Tokens are never logged: they only ever go into the ``Authorization`` header.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from adx.logging import get_logger
from adx.settings import Settings
from contracts.context import RequestContext
from gateway_client.cache import Cache, MemoryCache, RedisCache, ResilientCache, cache_from_settings
from gateway_client.errors import (
    GatewayError,
    GatewayServerError,
    GatewayUnavailable,
    error_from_response,
)
from gateway_client.keys import CacheKey, CacheScope

JSONParams = Mapping[str, str | int | float | bool | list[str] | list[int] | None]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
_RETRY_STATUSES = frozenset({502, 503, 504})
_ACCEPT = "application/json, application/problem+json"


class _Logger(Protocol):
    def info(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: str, *args: Any, **kw: Any) -> Any: ...


class GatewayMetrics:
    """One set of client metrics per registry."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, GatewayMetrics]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "bff_gateway_requests_total",
            "Gateway request attempts by method and outcome (HTTP status, timeout, "
            "connection, circuit_open)",
            ["method", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "bff_gateway_retries_total",
            "Gateway requests retried after a transient failure",
            ["method"],
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> GatewayMetrics:
        registry = REGISTRY if registry is None else registry
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


class _Failure(Exception):
    """A failure of the gateway (no answer, or 5xx): counts against the breaker and may be
    retried. ``unsent``: the request certainly never reached the gateway."""

    def __init__(self, error: GatewayError, *, retryable: bool, unsent: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.unsent = unsent


def _is_not_failure(error: BaseException) -> bool:
    return not isinstance(error, _Failure)


def build_path(template: str, **params: object) -> str:
    """``build_path("/api/user/users/{user_id}", user_id=uid)``: each value becomes one
    percent-encoded path segment, so an id can never add segments or climb (``..``)."""
    encoded = {}
    for name, value in params.items():
        text = str(value)
        if text in ("", ".", ".."):
            raise ValueError(f"invalid path segment for {name}: {text!r}")
        encoded[name] = quote(text, safe="")
    return template.format(**encoded)


def _backend_name(cache: Cache) -> str:
    if isinstance(cache, RedisCache):
        return "redis"
    if isinstance(cache, MemoryCache):
        return "memory"
    return type(cache).__name__


class GatewayClient:
    """``retries``: extra attempts after the first (so 2 means at most 3 calls), with
    exponential backoff and full jitter between ``backoff_seconds`` and
    ``max_backoff_seconds``; a ``Retry-After`` longer than that ends the retries.
    ``breaker``: a shared purgatory factory (one per process is enough); by default the
    client makes its own, opening after ``breaker_threshold`` consecutive failures for
    ``breaker_cooldown_seconds``. ``cache``: any :class:`Cache`, wrapped in
    :class:`ResilientCache` unless it already is one; by default an in-memory one."""

    def __init__(
        self,
        base_url: str,
        *,
        cache: Cache | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retries: int = 2,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 2.0,
        breaker: AsyncCircuitBreakerFactory | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown_seconds: float = 10.0,
        registry: CollectorRegistry | None = None,
        logger: _Logger | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the gateway URL must be http(s)://host[:port], got {base_url!r}")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._owns_cache = cache is None
        inner: Cache = MemoryCache() if cache is None else cache
        self.cache: ResilientCache = (
            inner
            if isinstance(inner, ResilientCache)
            else ResilientCache(inner, backend=_backend_name(inner), registry=registry)
        )
        self._retries = retries
        self._backoff = wait_random_exponential(multiplier=backoff_seconds, max=max_backoff_seconds)
        self._max_backoff = max_backoff_seconds
        self._breakers = breaker or AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_cooldown_seconds
        )
        self._breakers.add_listener(self._on_breaker_event)
        self._closed = False
        self._metrics = GatewayMetrics.for_registry(registry)
        self._log: _Logger = logger or get_logger(__name__)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        cache: Cache | None = None,
        registry: CollectorRegistry | None = None,
        **options: Any,
    ) -> GatewayClient:
        """The gateway at ``settings.url("gateway")``; the cache from ``settings.redis_url``
        (in-memory without it) unless one is given."""
        owned = cache is None
        client = cls(
            settings.url("gateway"),
            cache=cache_from_settings(settings, registry=registry) if cache is None else cache,
            registry=registry,
            **options,
        )
        client._owns_cache = owned
        return client

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._breakers.remove_listener(self._on_breaker_event)
        if self._owns_http:
            await self._http.aclose()
        if self._owns_cache:
            await self.cache.aclose()

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Public calls ---------------------------------------------------------------------

    async def get_json(
        self,
        context: RequestContext | None,
        path: str,
        *,
        token: str | None,
        params: JSONParams | None = None,
        cache_ttl: float | None = None,
        tags: Collection[str] = (),
        query_name: str | None = None,
        cache_scope: CacheScope = CacheScope.USER,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` and return the parsed JSON (None for an empty answer).

        With ``cache_ttl`` (seconds) the answer is read through the cache, under a key of
        (``query_name``, tenant, user, arguments, roles) — or the tenant's shared key with
        ``cache_scope=CacheScope.TENANT``, only for answers that are the same for every user
        of the tenant — and stored with ``tags`` for invalidation. Raises a
        :class:`GatewayError` subclass; a cache failure never raises."""
        request_headers = self._headers(context, token, correlation_id, None, headers)
        if cache_ttl is None:
            response = await self._send("GET", path, request_headers, params, None, request_timeout)
            return _decode(response)
        if cache_ttl <= 0:
            raise ValueError("cache_ttl must be positive")
        if context is None:
            raise ValueError("a cached read needs the caller's context (tenant and user)")
        key = str(
            CacheKey.build(
                query_name or f"GET {path}",
                context,
                {"path": path, "params": dict(params or {})},
                scope=cache_scope,
            )
        )
        cached = await self.cache.get(key)
        if cached is not None:
            try:
                return json.loads(cached)
            except ValueError:
                pass  # a corrupt entry is a miss; the fresh answer replaces it
        stamp = await self.cache.stamp(tags)
        response = await self._send("GET", path, request_headers, params, None, request_timeout)
        data = _decode(response)
        no_store = "no-store" in response.headers.get("cache-control", "").lower()
        if stamp is not None and not no_store:
            await self.cache.set(key, response.content, cache_ttl, tags, stamp=stamp)
        return data

    async def send_json(
        self,
        context: RequestContext | None,
        method: str,
        path: str,
        *,
        token: str | None,
        json: Any = None,
        idempotency_key: str | None = None,
        invalidates: Collection[str] = (),
        params: JSONParams | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A mutation (POST, PUT, PATCH, DELETE) with a JSON body; returns the parsed JSON.

        Retried only with ``idempotency_key`` (sent as ``Idempotency-Key``). After a 2xx the
        ``invalidates`` tags are invalidated — and also after a 5xx or no answer, since the
        change may have been applied; never after a 4xx (nothing changed)."""
        method = method.upper()
        if method in _IDEMPOTENT_METHODS:
            raise ValueError(f"send_json is for mutations; use get_json for {method}")
        request_headers = self._headers(context, token, correlation_id, idempotency_key, headers)
        try:
            response = await self._send(
                method,
                path,
                request_headers,
                params,
                json,
                request_timeout,
                retryable=idempotency_key is not None,
            )
        except (GatewayUnavailable, GatewayServerError):
            await self._invalidate(invalidates)
            raise
        await self._invalidate(invalidates)
        return _decode(response)

    async def invalidate(self, tags: Collection[str]) -> int:
        """Invalidates tags outside a mutation (e.g. on an event); never raises."""
        return await self._invalidate(tags)

    # Internals ------------------------------------------------------------------------

    async def _invalidate(self, tags: Collection[str]) -> int:
        if not tags:
            return 0
        return await self.cache.invalidate_tags(list(tags))

    def _headers(
        self,
        context: RequestContext | None,
        token: str | None,
        correlation_id: str | None,
        idempotency_key: str | None,
        extra: Mapping[str, str] | None,
    ) -> dict[str, str]:
        headers = {k.lower(): v for k, v in (extra or {}).items()}
        headers["accept"] = _ACCEPT
        headers.pop("authorization", None)
        if token:
            headers["authorization"] = f"Bearer {token}"
        correlation = correlation_id or (context.correlation_id if context else None)
        if correlation:
            headers["x-correlation-id"] = correlation
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        return headers

    def _url(self, path: str) -> str:
        parts = urlsplit(path)
        if parts.scheme or parts.netloc or not path.startswith("/"):
            raise ValueError(f"expected a path on the gateway, got {path!r}")
        if any(segment in (".", "..") for segment in parts.path.split("/")):
            raise ValueError(f"dot segments are not allowed in gateway paths: {path!r}")
        return f"{self.base_url}{path}"

    def _circuit_name(self, path: str) -> str:
        # /api/<service>/...: one breaker per service behind the gateway.
        prefix = "/".join(urlsplit(path).path.strip("/").split("/")[:2])
        return f"{self.base_url}/{prefix}"

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        params: JSONParams | None,
        body: Any,
        request_timeout: float | None,
        *,
        retryable: bool | None = None,
    ) -> httpx.Response:
        """One logical call: attempts (retried as allowed) through the breaker; returns a
        2xx response, raises a GatewayError for anything else."""
        idempotent = method in _IDEMPOTENT_METHODS if retryable is None else retryable
        request = self._http.build_request(
            method,
            self._url(path),
            params=params,
            json=body,
            headers=headers,
            timeout=self._timeout if request_timeout is None else httpx.Timeout(request_timeout),
        )
        circuit = self._circuit_name(path)
        log_path = urlsplit(path).path

        def should_retry(error: BaseException) -> bool:
            if not isinstance(error, _Failure) or not error.retryable:
                return False
            if not (idempotent or error.unsent):
                return False
            wait_hint = error.error.retry_after
            return wait_hint is None or wait_hint <= self._max_backoff

        def wait(state: RetryCallState) -> float:
            delay = float(self._backoff(state))
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, _Failure) and error.error.retry_after is not None:
                delay = max(delay, error.error.retry_after)
            return delay

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            reason = (
                error.error.status or getattr(error.error, "reason", None)
                if isinstance(error, _Failure)
                else None
            )
            self._metrics.retries.labels(method).inc()
            self._log.warning(
                "gateway.retry",
                method=method,
                path=log_path,
                attempt=state.attempt_number,
                reason=reason,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        response: httpx.Response | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._attempt(request, circuit)
        except _Failure as failure:
            raise failure.error from failure.__cause__
        assert response is not None  # tenacity either returned an attempt's answer or raised
        if not response.is_success:
            raise error_from_response(response)
        return response

    async def _attempt(self, request: httpx.Request, circuit: str) -> httpx.Response:
        method = request.method
        # Only gateway failures count against the breaker: not a 4xx answer, not a
        # cancelled caller, not a bug on this side.
        breaker = await self._breakers.get_breaker(
            circuit, exclude=[(BaseException, _is_not_failure)]
        )
        try:
            async with breaker:
                try:
                    response = await self._http.send(request)
                except httpx.TimeoutException as error:
                    self._metrics.requests.labels(method, "timeout").inc()
                    raise _Failure(
                        GatewayUnavailable(
                            reason="timeout", detail="the gateway did not answer in time"
                        ),
                        retryable=True,
                        unsent=isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout),
                    ) from error
                except httpx.TransportError as error:
                    self._metrics.requests.labels(method, "connection").inc()
                    raise _Failure(
                        GatewayUnavailable(
                            reason="connection", detail="the gateway could not be reached"
                        ),
                        retryable=True,
                        unsent=isinstance(error, httpx.ConnectError),
                    ) from error
                self._metrics.requests.labels(method, str(response.status_code)).inc()
                if response.status_code >= 500:
                    raise _Failure(
                        error_from_response(response),
                        retryable=response.status_code in _RETRY_STATUSES,
                    )
        except OpenedState as opened:
            self._metrics.requests.labels(method, "circuit_open").inc()
            remaining = max(0.0, opened.opened_at + breaker.context.ttl - time.time())
            raise GatewayUnavailable(
                reason="circuit_open",
                detail="the service is failing; try again shortly",
                retry_after=round(remaining, 3),
            ) from None
        return response

    def _on_breaker_event(self, name: str, event_type: str, event: Event) -> None:
        if event_type == "state_changed" and name.startswith(self.base_url):
            self._log.warning(
                "gateway.circuit_changed", circuit=name, state=getattr(event, "state", None)
            )


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        raise GatewayServerError(
            response.status_code,
            title="Invalid response",
            detail="the gateway's answer was not JSON",
        ) from None


__all__ = ["GatewayClient", "GatewayMetrics", "build_path"]
