"""Prometheus metrics of a BFF, on a registry of its own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from strawberry.extensions import SchemaExtension
from strawberry.utils.await_maybe import await_maybe

from graph.errors import code_of


class BffMetrics:
    def __init__(self, bff: str, registry: CollectorRegistry | None = None) -> None:
        if registry is None:  # a registry of its own: the process's resources too
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
        self.registry = registry
        self.bff = bff
        self.resolver_seconds = Histogram(
            "bff_resolver_seconds",
            "Resolver latency of top-level fields",
            ["bff", "field"],
            registry=self.registry,
        )
        self.workflow_starts = Counter(
            "bff_workflow_starts",
            "Workflows started",
            ["bff", "workflow_type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "bff_errors", "GraphQL errors by code", ["bff", "code"], registry=self.registry
        )

    def count_errors(self, errors: Sequence[GraphQLError]) -> None:
        """By the code the client sees (known before the masking has given it)."""
        for error in errors:
            self.errors.labels(self.bff, code_of(error)).inc()

    def workflow_started(self, workflow_type: str) -> None:
        self.workflow_starts.labels(self.bff, workflow_type).inc()


class MetricsExtension(SchemaExtension):
    """Times top-level fields (nested fields would cost more than they tell). Errors are
    counted by the schema (graph.schema.BffSchema), which sees parse errors too."""

    def __init__(self, metrics: BffMetrics) -> None:
        self.metrics = metrics

    async def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        if info.path.prev is not None:
            return await await_maybe(_next(root, info, *args, **kwargs))
        started = time.perf_counter()
        try:
            return await await_maybe(_next(root, info, *args, **kwargs))
        finally:
            self.metrics.resolver_seconds.labels(self.metrics.bff, info.field_name).observe(
                time.perf_counter() - started
            )
