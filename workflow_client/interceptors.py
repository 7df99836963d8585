"""Carries the caller's RequestContext through Temporal headers:
client -> workflow -> activities and child workflows, for starts, signals, queries, updates
and update-with-start, and tells an activity whether it runs as a compensation. Register it
on the client only; workers built from it inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import temporalio.activity
import temporalio.client
import temporalio.converter
import temporalio.worker
import temporalio.workflow
from temporalio.api.common.v1 import Payload

from contracts.context import (
    COMPENSATION_HEADER_KEY,
    HEADER_KEY,
    RequestContext,
    compensating,
    current_context,
    in_compensation,
    use_context,
)

# Headers are plain JSON (they are stored in history unencrypted): only ids and roles go in.
_HEADER_CONVERTER = temporalio.converter.default().payload_converter


class _HasHeaders(Protocol):
    headers: Mapping[str, Payload]


def _write_header(target: _HasHeaders) -> None:
    context = current_context()
    if context is not None:
        payload = _HEADER_CONVERTER.to_payload(context.model_dump(mode="json"))
        target.headers = {**target.headers, HEADER_KEY: payload}


def _write_activity_headers(target: _HasHeaders) -> None:
    _write_header(target)
    if in_compensation():
        flag = _HEADER_CONVERTER.to_payload(True)
        target.headers = {**target.headers, COMPENSATION_HEADER_KEY: flag}


@contextmanager
def _context_from(source: _HasHeaders) -> Iterator[None]:
    payload = source.headers.get(HEADER_KEY)
    context = (
        RequestContext.model_validate(_HEADER_CONVERTER.from_payload(payload))
        if payload is not None
        else None
    )
    with use_context(context):
        yield


class ContextPropagationInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        _write_header(input)
        return await super().start_workflow(input)

    async def query_workflow(self, input: temporalio.client.QueryWorkflowInput) -> Any:
        _write_header(input)
        return await super().query_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        _write_header(input)
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        _write_header(input)
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        _write_header(input.start_workflow_input)
        _write_header(input.update_workflow_input)
        return await super().start_update_with_start_workflow(input)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        with (
            _context_from(input),
            compensating(COMPENSATION_HEADER_KEY in input.headers),
        ):
            return await super().execute_activity(input)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        with _context_from(input):
            return await super().execute_workflow(input)

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        with _context_from(input):
            await super().handle_signal(input)

    async def handle_query(self, input: temporalio.worker.HandleQueryInput) -> Any:
        with _context_from(input):
            return await super().handle_query(input)

    def handle_update_validator(self, input: temporalio.worker.HandleUpdateInput) -> None:
        with _context_from(input):
            super().handle_update_validator(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        with _context_from(input):
            return await super().handle_update_handler(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def start_activity(
        self, input: temporalio.worker.StartActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        _write_activity_headers(input)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        _write_activity_headers(input)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> temporalio.workflow.ChildWorkflowHandle[Any, Any]:
        _write_header(input)
        return await super().start_child_workflow(input)

    async def signal_child_workflow(
        self, input: temporalio.worker.SignalChildWorkflowInput
    ) -> None:
        _write_header(input)
        await super().signal_child_workflow(input)

    async def signal_external_workflow(
        self, input: temporalio.worker.SignalExternalWorkflowInput
    ) -> None:
        _write_header(input)
        await super().signal_external_workflow(input)
