"""The user service (port setting ``user``, task queue ``user-task-queue``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adx.settings import Environment
from contracts.names import TaskQueue
from services.common.dev_seed import USERS
from services.common.service import ServiceDefinition, ServiceRuntime
from services.user.activities import UserActivities
from services.user.api import routes
from services.user.store import UserStore
from services.user.workflows import WORKFLOWS

# Test environment only: seconds each bulk item waits after committing (lets a test kill the
# worker between an item's effect and its completion report).
BULK_ITEM_DELAY_ENV = "ADX_USER_TEST_BULK_ITEM_DELAY"


def _activities(runtime: ServiceRuntime) -> Sequence[Callable[..., Any]]:
    delay = 0.0
    if runtime.settings.environment is Environment.TEST:
        delay = float(os.environ.get(BULK_ITEM_DELAY_ENV) or 0)
    activities = UserActivities(
        UserStore(runtime.db), runtime.settings, bulk_item_delay_seconds=delay
    )
    return activities.all()


async def _seed(runtime: ServiceRuntime) -> None:
    """Profiles and memberships of the dev users (alice: acme + globex; bob: globex)."""
    store = UserStore(runtime.db)
    for user in USERS:
        for tenant_id, roles in user.memberships.items():
            await store.seed_member(user.id, user.email, user.display_name, tenant_id, list(roles))


SERVICE = ServiceDefinition(
    name="user",
    task_queue=TaskQueue.USER,
    migrations=Path(__file__).parent / "migrations",
    routes=routes,
    workflows=WORKFLOWS,
    activities=_activities,
    seed=_seed,
)
