"""The auth service's definition: ``adx service auth server|worker``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from starlette.routing import BaseRoute

from contracts.names import TaskQueue
from services.auth import api
from services.auth.activities import AuthActivities, components, now_utc
from services.auth.security import hash_password
from services.auth.workflows import WORKFLOWS
from services.common.dev_seed import USERS
from services.common.service import ServiceDefinition, ServiceRuntime

log = structlog.stdlib.get_logger(__name__)


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return api.routes(runtime)


def activities(runtime: ServiceRuntime) -> Sequence[Callable[..., Any]]:
    return AuthActivities(components(runtime)).all()


async def seed_dev_data(runtime: ServiceRuntime) -> None:
    """alice@acme.test and bob@globex.test with their tenant grants, once: an existing user
    (whose password may have changed since) is left as it is."""
    store = components(runtime).store
    password = runtime.settings.dev_seed_password.get_secret_value()
    now = now_utc()
    for seed in USERS:
        if await store.get_user(seed.id) is None:
            created = await store.seed_user(seed.id, seed.email, await hash_password(password), now)
            if created:
                log.info("auth.dev_seed.user_created", email=seed.email)
        for tenant_id, roles in seed.memberships.items():
            await store.seed_grant(seed.id, tenant_id, roles, now)


async def on_start(runtime: ServiceRuntime) -> None:
    components(runtime)


SERVICE = ServiceDefinition(
    name="auth",
    task_queue=TaskQueue.AUTH,
    migrations=Path(__file__).parent / "migrations",
    routes=routes,
    workflows=WORKFLOWS,
    activities=activities,
    on_start=on_start,
    seed=seed_dev_data,
)
