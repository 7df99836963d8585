"""Fixtures running the demo workflows (tests/workflow_client/flows.py) on the real dev server:
imported by the conftest of each test package that uses them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from adx.settings import Settings
from contracts.context import RequestContext
from tests.workflow_client import flows
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

DEMO_TYPES = ["demo_steps", "demo_child", "demo_context", "demo_wait", "demo_continue"]


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    return await connect(settings)


@pytest.fixture(scope="session")
def demo_queue() -> str:
    return f"demo-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def demo_worker(client: Client, demo_queue: str) -> AsyncIterator[None]:
    worker = create_worker(
        client, task_queue=demo_queue, workflows=flows.WORKFLOWS, activities=flows.ACTIVITIES
    )
    async with worker:
        yield


@pytest.fixture(scope="session")
def ops(client: Client, demo_queue: str, demo_worker: None) -> WorkflowOperations:
    return WorkflowOperations(client, task_queues={name: demo_queue for name in DEMO_TYPES})


@pytest.fixture
def alice() -> RequestContext:
    return RequestContext(
        user_id="alice@acme.test",
        tenant_id=f"acme-{uuid.uuid4().hex[:6]}",
        roles=("owner", "member"),
        correlation_id=uuid.uuid4().hex,
    )


@pytest.fixture
def mallory(alice: RequestContext) -> RequestContext:
    """Another tenant's user."""
    return RequestContext(user_id="mallory@globex.test", tenant_id=f"globex-{uuid.uuid4().hex[:6]}")


@pytest.fixture(autouse=True)
def _reset_flows() -> None:
    flows.FAILING_STEPS.clear()
