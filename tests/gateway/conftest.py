"""A real stack for the gateway tests: the user service (server + worker) and the gateway,
over real HTTP, on the real Temporal dev server, with tokens verified through a JWKS URL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from temporalio.client import Client

from adx.settings import Settings
from contracts.context import RequestContext
from contracts.names import TaskQueue
from gateway.app import create_gateway_app
from services.common.dev_seed import seed_user_id
from services.user.service import SERVICE as USER_SERVICE
from tests.support.bff import issue_token, jwks_endpoint
from tests.support.demo import _reset_flows, client, demo_queue, demo_worker
from tests.support.http import serve_app
from tests.support.services import running_service
from tests.support.stand_ins import AuthStandIn
from workflow_client.worker import create_worker

__all__ = ["_reset_flows", "client", "demo_queue", "demo_worker"]

ALICE = RequestContext(
    user_id=seed_user_id("alice@acme.test"), tenant_id="acme", roles=("owner", "admin", "member")
)
BOB = RequestContext(
    user_id=seed_user_id("bob@globex.test"), tenant_id="globex", roles=("owner", "admin", "member")
)

# Stands in for the auth service's account activities (no auth worker in this stack).
AUTH = AuthStandIn()


@dataclass
class Stack:
    settings: Settings
    gateway: str
    user_service: str

    def headers(
        self, who: RequestContext = ALICE, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, who)}", **(extra or {})}


def gateway_settings(settings: Settings, jwks_url: str, user_url: str, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "jwks_url": jwks_url,
            "gateway_upstreams": {"user": [user_url]},
            "gateway_rate_limit_user": "10000/minute",
            "gateway_rate_limit_tenant": "10000/minute",
            **extra,
        }
    )


@pytest.fixture(scope="module")
async def stack(
    settings: Settings, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    database = tmp_path_factory.mktemp("gateway") / "user.sqlite"
    user_settings = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{database}"})
    stand_in = create_worker(client, task_queue=TaskQueue.AUTH.value, activities=AUTH.activities())
    async with (
        stand_in,
        running_service(USER_SERVICE, user_settings, client=client) as user,
        jwks_endpoint(settings) as jwks_url,
    ):
        app = create_gateway_app(gateway_settings(settings, jwks_url, user.url), client=client)
        async with serve_app(app, lifespan=True) as url:
            yield Stack(settings=settings, gateway=url, user_service=user.url)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as session:
        yield session


def unique() -> str:
    return uuid.uuid4().hex[:8]
