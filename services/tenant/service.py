"""The tenant service (port setting ``tenant``, task queue ``tenant-task-queue``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adx.settings import Environment
from contracts.names import TaskQueue
from contracts.tenant import Plan
from services.common.dev_seed import TENANTS, USERS
from services.common.service import ServiceDefinition, ServiceRuntime
from services.tenant import billing
from services.tenant.activities import TenantActivities
from services.tenant.api import routes
from services.tenant.store import TenantStore
from services.tenant.workflows import WORKFLOWS

# Test environment only: seconds each write step waits after committing (lets a test kill
# the worker between a step's effect and its completion report).
STEP_DELAY_ENV = "ADX_TENANT_TEST_STEP_DELAY"


def _activities(runtime: ServiceRuntime) -> Sequence[Callable[..., Any]]:
    delay = 0.0
    if runtime.settings.environment is Environment.TEST:
        delay = float(os.environ.get(STEP_DELAY_ENV) or 0)
    return TenantActivities(TenantStore(runtime.db), step_delay_seconds=delay).all()


async def _on_start(runtime: ServiceRuntime) -> None:
    """The plan catalogue, on every start."""
    await TenantStore(runtime.db).sync_plans(list(billing.PLANS.values()))


async def _seed(runtime: ServiceRuntime) -> None:
    """The dev tenants (acme, globex) and their memberships."""
    store = TenantStore(runtime.db)
    for seed in TENANTS:
        plan = billing.terms(Plan(seed.plan))
        members = {
            user.id: list(user.memberships[seed.id])
            for user in USERS
            if seed.id in user.memberships
        }
        await store.seed(seed.id, seed.name, plan.plan, plan.quotas, members)


SERVICE = ServiceDefinition(
    name="tenant",
    task_queue=TaskQueue.TENANT,
    migrations=Path(__file__).parent / "migrations",
    routes=routes,
    workflows=WORKFLOWS,
    activities=_activities,
    on_start=_on_start,
    seed=_seed,
)
