"""Connecting to Temporal with the project's data converter, codec and interceptors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
import temporalio.client
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from adx.settings import Settings
from workflow_client.codec import KeyRing
from workflow_client.converter import build_data_converter
from workflow_client.errors import TemporalUnavailable
from workflow_client.interceptors import ContextPropagationInterceptor
from workflow_client.telemetry import runtime_for, tracing_interceptors

log = structlog.stdlib.get_logger(__name__)


def client_interceptors(settings: Settings) -> list[temporalio.client.Interceptor]:
    """The interceptors every client, worker and replayer of this system uses."""
    interceptors: list[temporalio.client.Interceptor] = [ContextPropagationInterceptor()]
    for extra in tracing_interceptors(settings):
        assert isinstance(extra, temporalio.client.Interceptor)
        interceptors.append(extra)
    return interceptors


async def connect(
    settings: Settings,
    *,
    keyring: KeyRing | None = None,
    extra_interceptors: Sequence[temporalio.client.Interceptor] = (),
) -> Client:
    """A client for ``settings.temporal_namespace`` with encryption, context propagation and
    (when configured) tracing and SDK metrics.

    Retries a few times with backoff, then raises :class:`TemporalUnavailable` naming the
    address and namespace instead of a stack of gRPC text.
    """
    address = settings.effective_temporal_address
    namespace = settings.temporal_namespace
    converter = build_data_converter(keyring or KeyRing.from_settings(settings))
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    delay = settings.temporal_connect_backoff_seconds
    last_error = "no attempt made"
    for attempt in range(1, settings.temporal_connect_attempts + 1):
        try:
            client = await Client.connect(
                address,
                namespace=namespace,
                data_converter=converter,
                interceptors=[*client_interceptors(settings), *extra_interceptors],
                tls=settings.temporal_tls,
                api_key=api_key,
                runtime=runtime_for(settings),
            )
            await ensure_namespace(client)
            return client
        except TemporalUnavailable:
            raise
        except (RuntimeError, RPCError) as error:
            last_error = _short_reason(error)
            log.warning(
                "temporal.connect_failed",
                address=address,
                namespace=namespace,
                attempt=attempt,
                reason=last_error,
            )
        if attempt < settings.temporal_connect_attempts:
            await asyncio.sleep(delay)
            delay *= 2
    raise TemporalUnavailable(address, namespace, last_error)


async def ensure_namespace(client: Client) -> None:
    """Fails clearly when the namespace does not exist (Temporal would only say so later)."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(
                client.service_client.config.target_host,
                client.namespace,
                "the namespace does not exist",
            ) from error
        raise


def _short_reason(error: Exception) -> str:
    text = str(error)
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "timed out" in text.lower() or "deadline" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(error).__name__
