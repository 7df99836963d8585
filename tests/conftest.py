"""Session-wide real infrastructure: one Temporal dev server, one Redis, one PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from adx.settings import Environment, Settings
from tests.support.ports import reserved_ports
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    create_database,
    run_postgres,
    run_redis,
)
from tests.support.smtp import Mailbox, run_smtp
from tests.support.temporal import TEST_NAMESPACE, run_temporal


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with run_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def stack_ports() -> Iterator[dict[str, int]]:
    """The stack's ports for this session, reserved (tests/support/ports.py): a test that
    serves one sets it explicitly; any other refuses connections, whatever runs beside."""
    with reserved_ports() as ports:
        yield ports


@pytest.fixture(scope="session")
def base_settings(
    tmp_path_factory: pytest.TempPathFactory, stack_ports: dict[str, int]
) -> Settings:
    # No .env: a developer's settings file must not change what the suite checks.
    return Settings(
        _env_file=None,
        environment=Environment.TEST,
        data_dir=tmp_path_factory.mktemp("adx-data"),
        temporal_namespace=TEST_NAMESPACE,
        log_format=None,
        port_offset=0,
        ports=stack_ports,
    )


@pytest.fixture(scope="session")
async def temporal_env(base_settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    async with run_temporal(base_settings) as env:
        yield env


@pytest.fixture(scope="session")
def settings(base_settings: Settings, temporal_env: WorkflowEnvironment) -> Settings:
    """Settings pointing at the session's Temporal server."""
    target = temporal_env.client.service_client.config.target_host
    return base_settings.model_copy(update={"temporal_address": target})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    with run_smtp() as mailbox:
        yield mailbox


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer
) -> str:
    """Each service store test runs against both SQLite and PostgreSQL, on a fresh database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite'}"
    return create_database(postgres_server, f"t_{uuid.uuid4().hex[:12]}")
