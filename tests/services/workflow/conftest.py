from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adx.settings import Settings
from contracts.names import TaskQueue
from services.auth.service import SERVICE as AUTH
from services.common.db import Database
from services.common.service import ServiceDefinition
from services.user.service import SERVICE as USER
from services.workflow.service import SERVICE as WORKFLOW
from tests.services.workflow.support import TenantStandIn, replacing, snapshot
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker


@dataclass
class Stack:
    """auth, user and the workflow service running for real (SQLite database each), the
    tenant stand-in on its own database; every worker polls the real task queue."""

    settings: Settings
    auth: RunningService
    user: RunningService
    workflow: RunningService
    tenant: TenantStandIn
    tenant_db: Database
    mailbox: Mailbox
    http: httpx.AsyncClient

    @property
    def ops(self) -> WorkflowOperations:
        return self.workflow.runtime.operations

    def dbs(self) -> dict[str, Database]:
        return {
            "auth": self.auth.runtime.db,
            "user": self.user.runtime.db,
            "tenant": self.tenant_db,
            "workflow": self.workflow.runtime.db,
        }

    async def snapshot(self) -> dict[str, Any]:
        return {name: await snapshot(db) for name, db in self.dbs().items()}


def service_settings(settings: Settings, folder: Path, name: str, mailbox: Mailbox) -> Settings:
    """One SQLite database per service under ``folder`` (the session's data_dir: keys are
    shared by every process of the test) and the real SMTP server."""
    return settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{folder / f'{name}.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
        }
    )


@asynccontextmanager
async def _service(
    exits: AsyncExitStack,
    definition: ServiceDefinition,
    settings: Settings,
    *,
    fail: str | None,
    worker: bool = True,
    server: bool = False,
) -> AsyncIterator[RunningService]:
    running = await exits.enter_async_context(
        running_service(definition, settings, worker=False, server=server)
    )
    if worker:
        runtime = running.runtime
        await exits.enter_async_context(
            create_worker(
                runtime.client,
                task_queue=definition.task_queue.value,
                workflows=definition.workflows,
                activities=replacing(list(definition.activities(runtime)), fail),
            )
        )
    yield running


@asynccontextmanager
async def run_stack(
    settings: Settings,
    folder: Path,
    mailbox: Mailbox,
    *,
    fail: str | None = None,
    workflow_worker: bool = True,
    real_tenant: bool = False,
) -> AsyncIterator[Stack]:
    """``fail``: the name of one activity that fails for good (a stand-in under the real name
    on the real worker of its queue, the other activities of that worker stay real)."""
    async with AsyncExitStack() as exits:

        def settings_for(name: str) -> Settings:
            return service_settings(settings, folder, name, mailbox)

        async def service(definition: ServiceDefinition, **options: Any) -> RunningService:
            return await exits.enter_async_context(
                _service(exits, definition, settings_for(definition.name), fail=fail, **options)
            )

        auth = await service(AUTH, server=True)
        user = await service(USER)
        workflow = await service(WORKFLOW, server=True, worker=workflow_worker)
        if real_tenant:
            # The tenant service itself (once it exists), like the others.
            from services.tenant.service import SERVICE as TENANT

            tenant_db = (await service(TENANT)).runtime.db
            tenant = TenantStandIn(tenant_db)
        else:
            tenant_db = Database(
                f"sqlite+aiosqlite:///{folder / 'tenant-standin.sqlite'}", "tenant"
            )
            exits.push_async_callback(tenant_db.dispose)
            tenant = TenantStandIn(tenant_db)
            await tenant.create()
            await exits.enter_async_context(
                create_worker(
                    workflow.runtime.client,
                    task_queue=TaskQueue.TENANT.value,
                    activities=replacing(tenant.all(), fail),
                )
            )
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=30))
        yield Stack(
            settings=settings_for("workflow"),
            auth=auth,
            user=user,
            workflow=workflow,
            tenant=tenant,
            tenant_db=tenant_db,
            mailbox=mailbox,
            http=http,
        )


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path, smtp_server: Mailbox) -> AsyncIterator[Stack]:
    async with run_stack(settings, tmp_path, smtp_server) as running:
        yield running
