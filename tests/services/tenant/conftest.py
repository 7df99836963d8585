from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adx.settings import Settings
from services.auth.activities import components
from services.auth.service import SERVICE as AUTH
from services.common.db import Database
from services.common.service import build_app, open_runtime
from services.tenant.service import SERVICE as TENANT
from services.tenant.store import TenantStore
from services.user.service import SERVICE as USER
from tests.services.tenant.support import Stack
from tests.support.http import serve_app


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TenantStore]:
    """The tenant store on a fresh, migrated database (SQLite and PostgreSQL)."""
    db = Database(database_url, "tenant")
    await db.migrate(TENANT.migrations)
    try:
        yield TenantStore(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
async def stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Auth, user and tenant (migrated, dev-seeded) on one SQLite database per module, their
    HTTP APIs served; tests start the workers they need (see Stack.workers)."""
    folder = tmp_path_factory.mktemp("tenant-stack")
    stack_settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{folder / 'services.sqlite'}"}
    )
    runtimes = {}
    definitions = {"auth": AUTH, "user": USER, "tenant": TENANT}
    client = None
    for name, definition in definitions.items():
        runtime = await open_runtime(definition, stack_settings, client=client)
        client = runtime.client
        runtimes[name] = runtime
    stack = Stack(settings=stack_settings, runtimes=runtimes, definitions=definitions)
    try:
        async with (
            serve_app(build_app(TENANT, runtimes["tenant"])) as tenant_url,
            serve_app(build_app(AUTH, runtimes["auth"])) as auth_url,
        ):
            stack.urls = {"tenant": tenant_url, "auth": auth_url}
            yield stack
    finally:
        await components(runtimes["auth"]).close()
        for runtime in runtimes.values():
            await runtime.db.dispose()


@pytest.fixture
async def tenant_http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.urls["tenant"], timeout=30) as client:
        yield client


@pytest.fixture
async def auth_http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.urls["auth"], timeout=30) as client:
        yield client
