"""The services behind the gateway: several instances per service, round-robin over the
healthy ones, active health checks, a circuit breaker per instance (purgatory) that opens
after repeated failures and half-opens after a cool-down, and a watch on every request: one
its instance is slow to answer has the instance's health checked, and is given up (503) if
the instance does not answer that either."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from adx.settings import Settings

log = structlog.stdlib.get_logger(__name__)

SERVICES = ("auth", "user", "file", "workflow", "tenant")


class UpstreamUnavailable(Exception):
    """No instance of the service can take the request (all unhealthy or breakers open)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"the {service} service is unavailable")
        self.service = service


class UpstreamFailure(Exception):
    """Counts against the instance's breaker: connection errors, timeouts and 5xx answers."""


class UpstreamHung(UpstreamFailure):
    """The instance took the request and then answered neither it nor its health check (a
    stopped or wedged process): the request is given up rather than left waiting."""


@dataclass
class Upstream:
    service: str
    base_url: str
    healthy: bool = True

    @property
    def breaker_name(self) -> str:
        return f"{self.service}@{self.base_url}"


@dataclass
class ServicePool:
    service: str
    upstreams: list[Upstream]
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def in_turn(self) -> list[Upstream]:
        """Healthy instances, starting with the next one in round-robin order."""
        healthy = [u for u in self.upstreams if u.healthy]
        if not healthy:
            return []
        start = next(self._turn) % len(healthy)
        return healthy[start:] + healthy[:start]


class Upstreams:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        on_breaker_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._http = http
        self.pools = {
            service: ServicePool(
                service,
                [
                    Upstream(service, url.rstrip("/"))
                    for url in settings.gateway_upstreams.get(service, [settings.url(service)])
                ],
            )
            for service in SERVICES
        }
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.gateway_breaker_threshold,
            default_ttl=settings.gateway_breaker_cooldown_seconds,
        )
        if on_breaker_change is not None:
            callback = on_breaker_change

            def hook(name: str, event_type: str, event: object) -> None:
                if event_type == "state_changed":
                    callback(name, str(getattr(event, "state", "")))

            self.breakers.add_listener(hook)
        self._health_task: asyncio.Task[None] | None = None

    def knows(self, service: str) -> bool:
        return service in self.pools

    @contextlib.asynccontextmanager
    async def checkout(self, service: str) -> AsyncIterator[Upstream]:
        """An instance to send one request to, inside its breaker: raise UpstreamFailure in
        the block to count a failure. Raises UpstreamUnavailable when none can take it."""
        for upstream in self.pools[service].in_turn():
            breaker = await self.breakers.get_breaker(upstream.breaker_name)
            try:
                async with breaker:
                    yield upstream
                    return
            except OpenedState:
                continue
        raise UpstreamUnavailable(service)

    async def answer(
        self, upstream: Upstream, sending: Awaitable[httpx.Response]
    ) -> httpx.Response:
        """The instance's answer to a request being sent. A request still unanswered after
        ``gateway_upstream_probe_seconds`` has the instance's health checked, and again each
        period: a live service may take its time (a request waiting on a workflow, up to the
        request's own timeout), a hung one is given up within about two periods
        (:class:`UpstreamHung`)."""
        task = asyncio.ensure_future(sending)
        period = self._settings.gateway_upstream_probe_seconds
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=period)
                if done:
                    return task.result()
                if not await self._check(upstream):
                    raise UpstreamHung("no answer, nor to its health check")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task

    async def breaker_state(self, upstream: Upstream) -> str:
        breaker = await self.breakers.get_breaker(upstream.breaker_name)
        return breaker.context.state

    # Active health checks ------------------------------------------------------------

    def start_health_checks(self) -> None:
        if self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())

    async def stop_health_checks(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None

    async def check_all(self) -> None:
        checks = [self._check(u) for pool in self.pools.values() for u in pool.upstreams]
        await asyncio.gather(*checks)

    async def _health_loop(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self._settings.gateway_health_interval_seconds)

    async def _check(self, upstream: Upstream) -> bool:
        try:
            response = await self._http.get(
                f"{upstream.base_url}/healthz", timeout=self._settings.gateway_probe_timeout_seconds
            )
            healthy = response.status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy != upstream.healthy:
            log.warning(
                "upstream.health_changed",
                service=upstream.service,
                upstream=upstream.base_url,
                healthy=healthy,
            )
        upstream.healthy = healthy
        return healthy
