"""Tracing and SDK metrics hooks, switched on by settings, against the real dev server."""

from __future__ import annotations

import uuid

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adx.settings import Settings, TracingExporter
from contracts.context import RequestContext
from tests.support.servers import free_port
from tests.workflow_client import flows
from tests.workflow_client.flows import StepsInput, StepsResult
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

CALLER = RequestContext(user_id="tracer", tenant_id="telemetry")


async def test_sdk_metrics_are_exported_to_prometheus(settings: Settings) -> None:
    bind = f"127.0.0.1:{free_port()}"
    client = await connect(settings.model_copy(update={"temporal_metrics_bind": bind}))
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with create_worker(
        client, task_queue=queue, workflows=flows.WORKFLOWS, activities=flows.ACTIVITIES
    ):
        ops = WorkflowOperations(client, task_queues={"demo_steps": queue})
        op = await ops.start(CALLER, "demo_steps", StepsInput(label="m", steps=1))
        await ops.result(CALLER, op.id, result_type=StepsResult)
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"http://{bind}/metrics")).text
    assert "temporal_workflow_completed" in body
    assert "temporal_activity_execution_latency" in body


async def test_tracing_interceptor_records_spans_when_enabled(settings: Settings) -> None:
    traced = settings.model_copy(update={"tracing_exporter": TracingExporter.CONSOLE})
    client = await connect(traced)  # installs the tracer provider on first use
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    queue = f"traced-{uuid.uuid4().hex[:8]}"
    async with create_worker(
        client, task_queue=queue, workflows=flows.WORKFLOWS, activities=flows.ACTIVITIES
    ):
        ops = WorkflowOperations(client, task_queues={"demo_steps": queue})
        op = await ops.start(CALLER, "demo_steps", StepsInput(label="t", steps=1))
        await ops.result(CALLER, op.id, result_type=StepsResult)
    provider.force_flush()
    names = {span.name for span in spans.get_finished_spans()}
    assert "StartWorkflow:demo_steps" in names
    assert "RunActivity:demo_do_step" in names


async def test_tracing_is_off_by_default(settings: Settings) -> None:
    from workflow_client.connect import client_interceptors

    kinds = {type(i).__name__ for i in client_interceptors(settings)}
    assert kinds == {"ContextPropagationInterceptor"}
