"""A real stack for the auth and user BFF tests: the auth and user services (server and
worker), the API gateway in front of them, the BFF under test calling that gateway, its cache
in a Redis of its own, all on the session's Temporal dev server, over real HTTP.

The tenant, file and workflow services are not part of it: their workflows (``get_tenant_data``,
``get_recent_files``, ``user_onboarding``) start but no worker picks them up, which is how a
slow dashboard part looks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from adx.settings import Settings
from bffs.user.dashboard import DashboardConfig
from contracts.context import RequestContext
from contracts.names import SearchAttribute, WorkflowType
from gateway.app import create_gateway_app
from graph.context import BffDependencies
from graph.runtime import Subgraph
from graph.tasks import drain
from services.auth.activities import AuthComponents, components, now_utc
from services.auth.security import hash_password
from services.auth.service import SERVICE as AUTH_SERVICE
from services.common.dev_seed import seed_user_id
from services.user.service import SERVICE as USER_SERVICE
from services.user.store import UserStore
from tests.support.bff import issue_token, jwks_endpoint, running_bff
from tests.support.http import serve_app
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from tests.support.temporal import terminate_running

ALICE = RequestContext(
    user_id=seed_user_id("alice@acme.test"), tenant_id="acme", roles=("owner", "admin", "member")
)
ALICE_IN_GLOBEX = RequestContext(
    user_id=seed_user_id("alice@acme.test"), tenant_id="globex", roles=("member",)
)
BOB = RequestContext(
    user_id=seed_user_id("bob@globex.test"), tenant_id="globex", roles=("owner", "admin", "member")
)
PASSWORD = "dev-password-123"  # settings.dev_seed_password

# Workflows this stack starts; whatever still runs when it stops is terminated, so no later
# test module's worker (with another database) picks it up.
STARTED_TYPES = (
    WorkflowType.USER_REGISTRATION,
    WorkflowType.PASSWORD_RESET,
    WorkflowType.MFA_SETUP,
    WorkflowType.USER_DEACTIVATION,
    WorkflowType.USER_ONBOARDING,
    WorkflowType.GET_USER_PROFILE,
    WorkflowType.GET_RECENT_ACTIVITY,
    WorkflowType.GET_TENANT_DATA,
    WorkflowType.GET_RECENT_FILES,
)

GATEWAY_ROUTE = "/api/{service}/{path:path}"
BUILD_ID = "b1"
# The slow parts take this long each time; the others need far less, but the machine may
# be busy (a part that misses it makes a test fail).
TEST_DASHBOARD = DashboardConfig(part_budget=timedelta(seconds=3))


@dataclass
class Stack:
    settings: Settings
    gateway: str
    auth: RunningService
    user: RunningService
    mailbox: Mailbox

    def token(self, who: RequestContext = ALICE) -> str:
        """A real access token (the user service does not check sessions; the auth service
        does, so auth tests log in instead)."""
        return issue_token(self.settings, who)

    async def gateway_calls(self) -> float:
        """Requests the gateway proxied to a service (its ``gateway_requests_total``)."""
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"{self.gateway}/metrics")).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "gateway_requests_total"
                    and sample.labels.get("route") == GATEWAY_ROUTE
                ):
                    total += sample.value
        return total

    async def add_member(
        self, name: str, tenants: dict[str, list[str]] | None = None
    ) -> tuple[str, str]:
        """An active user known to both services (account and grants in auth, profile and
        memberships in user), with the dev password; (id, email)."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
        user_id = seed_user_id(email)
        accounts = components(self.auth.runtime).store
        now = now_utc()
        await accounts.seed_user(user_id, email, await hash_password(PASSWORD), now)
        store = UserStore(self.user.runtime.db)
        for tenant_id, roles in (tenants or {"acme": ["member"]}).items():
            await accounts.seed_grant(user_id, tenant_id, roles, now)
            await store.seed_member(user_id, email, name.title(), tenant_id, roles)
        return user_id, email


def _service_settings(settings: Settings, folder: Path, name: str, mailbox: Mailbox) -> Settings:
    return settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{folder / f'{name}.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
        }
    )


@asynccontextmanager
async def running_stack(
    settings: Settings, client: Client, folder: Path, mailbox: Mailbox
) -> AsyncIterator[Stack]:
    async with (
        running_service(
            AUTH_SERVICE, _service_settings(settings, folder, "auth", mailbox), client=client
        ) as auth,
        running_service(
            USER_SERVICE, _service_settings(settings, folder, "user", mailbox), client=client
        ) as user,
        jwks_endpoint(settings) as jwks_url,
    ):
        gateway_settings = settings.model_copy(
            update={
                "jwks_url": jwks_url,
                "gateway_upstreams": {"auth": [auth.url], "user": [user.url]},
                "gateway_rate_limit_user": "100000/minute",
                "gateway_rate_limit_tenant": "100000/minute",
            }
        )
        try:
            app = create_gateway_app(gateway_settings, client=client)
            async with serve_app(app, lifespan=True) as gateway:
                yield Stack(
                    settings=settings, gateway=gateway, auth=auth, user=user, mailbox=mailbox
                )
        finally:
            await terminate_started(client)
            await auth.runtime.components.get(AuthComponents).close()


def bff_settings(settings: Settings, gateway: str, redis_url: str | None) -> Settings:
    """The BFF calls this stack's gateway and caches in ``redis_url``."""
    port = urlsplit(gateway).port
    assert port is not None
    return settings.model_copy(
        update={"ports": {**settings.ports, "gateway": port}, "redis_url": redis_url}
    )


@asynccontextmanager
async def running_subgraph(
    subgraph: Subgraph, stack: Stack, client: Client, redis_url: str | None
) -> AsyncIterator[tuple[str, BffDependencies]]:
    own = bff_settings(stack.settings, stack.gateway, redis_url)
    async with running_bff(subgraph, own, client=client) as (url, deps):
        deps.components.provide(TEST_DASHBOARD)
        try:
            yield url, deps
        finally:
            await drain(deps)


async def terminate_started(client: Client) -> None:
    types = ", ".join(f"'{name.value}'" for name in STARTED_TYPES)
    await terminate_running(
        client, f"{SearchAttribute.OPERATION_TYPE} IN ({types})", "BFF test stack stopped"
    )


async def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a BFF's ``/metrics`` (0 when absent)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
