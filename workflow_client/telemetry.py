"""Tracing and SDK metrics, both behind settings.

The Temporal runtime (and so its Prometheus endpoint) and the OpenTelemetry tracer provider
are process-wide: they are built once, on the first connect that asks for them.
"""

from __future__ import annotations

from functools import cache

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adx.settings import Settings, TracingExporter


@cache
def _prometheus_runtime(bind_address: str) -> Runtime:
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


def runtime_for(settings: Settings) -> Runtime | None:
    """A runtime exporting SDK metrics on ``temporal_metrics_bind``; None means the default."""
    if settings.temporal_metrics_bind is None:
        return None
    return _prometheus_runtime(settings.temporal_metrics_bind)


@cache
def _install_tracer_provider(exporter: TracingExporter, endpoint: str | None) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    span_exporter: SpanExporter
    if exporter is TracingExporter.OTLP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=endpoint)
    else:
        span_exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "adx-core"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)


def tracing_interceptors(settings: Settings) -> list[object]:
    """The OpenTelemetry interceptor when tracing is on, else nothing."""
    if settings.tracing_exporter is TracingExporter.NONE:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _install_tracer_provider(settings.tracing_exporter, settings.otlp_endpoint)
    return [TracingInterceptor()]
