"""A bounded schemathesis run against the gateway with every service (server and worker)
behind it, signed in through the auth service: no input gets a 5xx, and every answer matches
the schema documented for its status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from temporalio.client import Client

from adx.settings import Settings
from services.auth.service import SERVICE as AUTH_SERVICE
from services.file.service import SERVICE as FILE_SERVICE
from services.tenant.service import SERVICE as TENANT_SERVICE
from services.user.service import SERVICE as USER_SERVICE
from services.workflow.service import SERVICE as WORKFLOW_SERVICE
from tests.bffs.tenant_file_stack import running_gateway
from tests.support.bff import jwks_endpoint
from tests.support.schemathesis import only_unauthorized, run_schemathesis
from tests.support.services import running_service
from tests.support.temporal import terminate_running

pytestmark = pytest.mark.behaviour

# Every service's own routes. Logout and erasure (of the caller's own data, by default) end
# the session the run signs in with: they run last, on their own.
SERVICE_ROUTES = r"^/api/(auth|file|tenant|user|workflow)/"
ENDS_THE_SESSION = r"^/api/auth/logout$|^/api/workflow/compliance/erasures$"
SERVICES = {
    "auth": AUTH_SERVICE,
    "file": FILE_SERVICE,
    "tenant": TENANT_SERVICE,
    "user": USER_SERVICE,
    "workflow": WORKFLOW_SERVICE,
}


@pytest.fixture(scope="module")
async def every_service(
    settings: Settings, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The gateway in front of every service (server and worker), each with its database."""
    folder = tmp_path_factory.mktemp("every-service")
    started_at = time.time()
    async with AsyncExitStack() as stack:
        urls = {}
        for name, definition in SERVICES.items():
            service_settings = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{folder / f'{name}.sqlite'}"}
            )
            running = await stack.enter_async_context(
                running_service(definition, service_settings, client=client)
            )
            urls[name] = running.url
        jwks = await stack.enter_async_context(jwks_endpoint(settings))
        gateway = await stack.enter_async_context(running_gateway(settings, client, urls, jwks))
        try:
            yield gateway
        finally:
            await _terminate_started_since(client, started_at)


async def _terminate_started_since(client: Client, started_at: float) -> None:
    """What the run started and is still running would be picked up by later modules'
    workers, which have other databases."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at - 1))
    await terminate_running(client, f"StartTime >= '{since}'", "fuzz stack stopped")


async def test_every_service_route_through_the_gateway(
    every_service: str, settings: Settings
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        document = (await http.get(f"{every_service}/openapi.json")).json()
        login = await http.post(
            f"{every_service}/api/auth/login",
            json={
                "email": "alice@acme.test",
                "password": settings.dev_seed_password.get_secret_value(),
                "tenant_id": "acme",
            },
        )
        assert login.status_code == 200, login.text
        authorization = f"Bearer {login.json()['access_token']}"
        me = await http.get(
            f"{every_service}/api/user/me", headers={"Authorization": authorization}
        )
    assert me.status_code == 200
    assert "x-unavailable-services" not in document
    documented = {path.split("/")[2] for path in document["paths"] if path.startswith("/api/")}
    assert set(SERVICES) <= documented
    output = await run_schemathesis(
        every_service, authorization, SERVICE_ROUTES, "--exclude-path-regex", ENDS_THE_SESSION
    )
    # Signed in all along: only a login with made-up credentials answered nothing but 401.
    assert only_unauthorized(output) <= {"POST /api/auth/login"}, output[-6000:]
    await run_schemathesis(every_service, authorization, ENDS_THE_SESSION)
