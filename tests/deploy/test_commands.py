"""The commands a deployment runs besides the processes: `adx seed` (the demo data as a
one-shot job), `adx temporal-setup` (namespaces and search attributes on a Temporal it does not
run), `adx secrets` (a fresh set of production secrets) and the images' health check."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from adx.devstack.temporal import SEARCH_ATTRIBUTES
from adx.healthcheck import main as healthcheck
from adx.identity import SigningKeys
from adx.settings import Environment, Settings
from adx.temporal_setup import set_up
from services.auth.store import AuthStore
from services.common.db import Database
from services.common.dev_seed import TENANTS, USERS
from services.seed_command import seed_services
from services.tenant.store import TenantStore
from services.user.store import UserStore
from workflow_client.codec import KeyRing


async def test_seed_puts_the_demo_data_in_every_service_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Explicit: it seeds even where starting a process would not (production, dev_seed off),
    and a second run changes nothing."""
    quiet = settings.model_copy(update={"data_dir": tmp_path, "dev_seed": False})
    await seed_services(["auth", "tenant", "user"], quiet)
    await seed_services(["auth", "tenant", "user"], quiet)

    def db(service: str) -> Database:
        return Database.from_settings(quiet, service)

    auth, tenant, user = db("auth"), db("tenant"), db("user")
    try:
        for seed in USERS:
            row = await AuthStore(auth).get_user(seed.id)
            assert row is not None
            assert row.email == seed.email
            profile = await UserStore(user).get_profile(seed.id)
            assert profile is not None
            assert profile.display_name == seed.display_name
        for seed_tenant in TENANTS:
            found = await TenantStore(tenant).get_tenant(seed_tenant.id)
            assert found is not None
            assert found.name == seed_tenant.name
    finally:
        for database in (auth, tenant, user):
            await database.dispose()


def test_seed_names_an_unknown_service() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adx", "seed", "billing"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "unknown service billing" in result.stderr


async def test_temporal_setup_makes_the_namespaces_and_search_attributes(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    fresh = [f"setup-{uuid.uuid4().hex[:8]}", f"setup-{uuid.uuid4().hex[:8]}"]
    configured = settings.model_copy(update={"temporal_namespaces": fresh})
    await set_up(configured)
    await set_up(configured)  # what exists is left as it is
    service = temporal_env.client
    for namespace in fresh:
        described = await service.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        assert described.namespace_info.name == namespace
        listed = await service.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        assert {
            name: listed.custom_attributes.get(name) for name in SEARCH_ATTRIBUTES
        } == dict.fromkeys(SEARCH_ATTRIBUTES, keyword)


def test_secrets_are_fresh_and_what_production_reads(tmp_path: Path) -> None:
    def generate() -> dict[str, str]:
        printed = subprocess.run(
            [sys.executable, "-m", "adx", "secrets"], capture_output=True, text=True, check=True
        ).stdout
        return dict(line.split("=", 1) for line in printed.splitlines())

    first, second = generate(), generate()
    assert set(first) == set(second)
    assert all(first[name] != second[name] for name in first if "ACTIVE" not in name)
    # Each line is one unquoted .env value that the settings read as they are.
    production = Settings(
        _env_file=None,
        environment=Environment.PRODUCTION,
        data_dir=tmp_path,
        encryption_keys=json.loads(first["ADX_ENCRYPTION_KEYS"]),
        encryption_active_key_id=first["ADX_ENCRYPTION_ACTIVE_KEY_ID"],
        jwt_private_keys=json.loads(first["ADX_JWT_PRIVATE_KEYS"]),
        jwt_active_kid=first["ADX_JWT_ACTIVE_KID"],
    )
    assert KeyRing.from_settings(production).active_key_id == first["ADX_ENCRYPTION_ACTIVE_KEY_ID"]
    keys = SigningKeys.from_settings(production)
    assert keys.active_kid == first["ADX_JWT_ACTIVE_KID"]
    assert [key["kid"] for key in keys.jwks()["keys"]] == [first["ADX_JWT_ACTIVE_KID"]]
    assert not list(tmp_path.iterdir()), "production wrote a development secret"


@pytest.fixture
def probed() -> Iterator[int]:
    """An HTTP server alive (/healthz 200) but not ready (/readyz 503)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_check_asks_the_containers_process(
    probed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADX_PROCESS", raising=False)
    assert healthcheck([]) == 2  # which process?
    monkeypatch.setenv("ADX_PROCESS", "gateway")
    monkeypatch.setenv("ADX_PORTS", json.dumps({"gateway": probed}))
    assert healthcheck([]) == 0
    assert healthcheck(["--ready"]) == 1
    monkeypatch.setenv("ADX_PROCESS", "user_worker")
    monkeypatch.setenv("ADX_WORKER_HEALTH_PORT", str(probed))
    assert healthcheck([]) == 0
    monkeypatch.delenv("ADX_WORKER_HEALTH_PORT")
    assert healthcheck([]) == 2  # a worker serves no HTTP without the port
    monkeypatch.setenv("ADX_PROCESS", "gateway")
    probed_nothing = {"gateway": probed + 1 if probed < 65535 else probed - 1}
    monkeypatch.setenv("ADX_PORTS", json.dumps(probed_nothing))
    assert healthcheck([]) == 1
