"""Prometheus metrics of the gateway, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from adx.request_metrics import RequestMetrics

BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


class GatewayMetrics(RequestMetrics):
    def __init__(self) -> None:
        super().__init__("gateway")
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed upstream calls",
            ["service"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "gateway_breaker_state",
            "Breaker state (0 closed, 1 half-open, 2 open)",
            ["breaker"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused by a rate limit",
            ["scope"],
            registry=self.registry,
        )

    def breaker_changed(self, breaker: str, state: str) -> None:
        self.breaker_state.labels(breaker).set(BREAKER_STATES.get(state, -1))
