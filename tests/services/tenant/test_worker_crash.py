"""A tenant worker process killed with SIGKILL mid-saga, then restarted: the saga completes
and no side effect happens twice (one tenant, one set of roles, one owner membership, one
grant, one projection row)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from contracts.names import WorkflowType
from contracts.tenant import Plan, TenantProvisioningInput, TenantProvisioningResult
from services.auth.store import tenant_grants
from services.tenant.service import STEP_DELAY_ENV
from services.tenant.store import TenantStore, memberships, quotas, roles, tenants
from services.user.store import memberships as user_memberships
from tests.services.tenant.support import ALICE, ALICE_IN_ACME, Stack, unique
from tests.support.worker_process import service_worker


async def _count(store: TenantStore, table: object, **where: str) -> int:
    rows = await store.rows(table)  # type: ignore[arg-type]
    return sum(1 for row in rows if all(row[k] == v for k, v in where.items()))


async def test_provisioning_survives_a_killed_worker(stack: Stack, tmp_path: Path) -> None:
    store = TenantStore(stack.db)
    tenant_id = unique("crash")
    log_path = tmp_path / "worker.log"
    try:
        async with stack.workers(services=("auth", "user")):
            # Each write step waits 1.5 s after committing: the kill lands between a step's
            # effect and its report to Temporal.
            slow = service_worker("tenant", stack.settings, log_path, **{STEP_DELAY_ENV: "1.5"})
            async with slow as first:
                operation = await stack.ops.start(
                    ALICE_IN_ACME,
                    WorkflowType.TENANT_PROVISIONING.value,
                    TenantProvisioningInput(
                        tenant_id=tenant_id,
                        name="Crash Co",
                        plan=Plan.PROFESSIONAL,
                        activity_timeout_seconds=3,
                    ),
                )
                async with asyncio.timeout(60):
                    while await store.get_tenant(tenant_id) is None:
                        await asyncio.sleep(0.02)
                assert await first.kill() == -signal.SIGKILL
            async with service_worker("tenant", stack.settings, log_path):
                async with asyncio.timeout(60):
                    result = await stack.ops.result(
                        ALICE_IN_ACME, operation.id, result_type=TenantProvisioningResult
                    )
        assert result.tenant.id == tenant_id
        # Every effect exactly once.
        assert await _count(store, tenants, id=tenant_id) == 1
        assert await _count(store, roles, tenant_id=tenant_id) == 4
        assert await _count(store, quotas, tenant_id=tenant_id) == 1
        assert await _count(store, memberships, tenant_id=tenant_id) == 1
        assert await _count(store, tenant_grants, tenant_id=tenant_id, user_id=ALICE.id) == 1
        assert await _count(store, user_memberships, tenant_id=tenant_id) == 1
        # The step in flight at the kill was attempted again (and found done).
        history = await stack.ops.client.get_workflow_handle(operation.id).fetch_history()
        retried = [
            event
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.attempt > 1
        ]
        assert retried
    finally:
        print(log_path.read_text() if log_path.exists() else "(no worker log)")
