"""Settings in one place with secrets redacted; logs never carry secrets; correlation ids."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adx.logging import CorrelationIdMiddleware, configure_logging, get_logger
from adx.settings import Environment, LogFormat, Settings


def test_env_prefix_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADX_TEMPORAL_ADDRESS", "temporal.prod.internal:7233")
    monkeypatch.setenv("ADX_PORT_OFFSET", "100")
    monkeypatch.setenv("ADX_PORTS", '{"gateway": 9999}')
    settings = Settings()
    assert settings.effective_temporal_address == "temporal.prod.internal:7233"
    assert settings.port("bff_auth") == 4101
    assert settings.port("gateway") == 9999  # an explicit port wins over the offset
    assert settings.url("codec_server", "/decode") == "http://127.0.0.1:8189/decode"


def test_hosts_say_where_each_process_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """In containers every process binds all interfaces and reaches the others by name."""
    monkeypatch.setenv("ADX_HOST", "0.0.0.0")
    monkeypatch.setenv("ADX_HOSTS", '{"gateway": "gateway", "auth": "auth-server"}')
    settings = Settings(_env_file=None)
    assert settings.url("gateway", "/api") == "http://gateway:8080/api"
    assert settings.url("auth") == "http://auth-server:8081"
    assert settings.url("bff_user") == "http://0.0.0.0:4004"  # not named: at host


def test_each_service_may_have_a_database_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.db import database_url

    monkeypatch.setenv("ADX_DATABASE_URL", "postgresql+asyncpg://adx:pw@db/shared")
    monkeypatch.setenv("ADX_DATABASE_URLS", '{"auth": "postgresql+asyncpg://adx:pw@db/adx_auth"}')
    settings = Settings(_env_file=None)
    assert database_url(settings, "auth") == "postgresql+asyncpg://adx:pw@db/adx_auth"
    assert database_url(settings, "user") == "postgresql+asyncpg://adx:pw@db/shared"


def test_config_command_redacts_secrets() -> None:
    env = {
        "ADX_TEMPORAL_API_KEY": "tk-very-secret",
        "ADX_DATABASE_URL": "postgresql+asyncpg://adx:db-very-secret@db:5432/adx",
        "ADX_DATABASE_URLS": '{"auth": "postgresql+asyncpg://adx:db-very-secret@db/adx_auth"}',
        "ADX_REDIS_URL": "redis://:redis-very-secret@cache:6379/0",
        "ADX_ENCRYPTION_KEYS": '{"k1": "a2V5LXZlcnktc2VjcmV0"}',
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "adx", "config"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for secret in ("tk-very-secret", "db-very-secret", "redis-very-secret", "a2V5LXZlcnktc2VjcmV0"):
        assert secret not in out
    printed = json.loads(out)
    assert printed["database_url"] == "postgresql+asyncpg://adx:**********@db:5432/adx"
    assert printed["database_urls"] == {"auth": "postgresql+asyncpg://adx:**********@db/adx_auth"}
    assert printed["encryption_keys"] == {"k1": "**********"}


@pytest.fixture
def captured_json_logs() -> io.StringIO:
    settings = Settings(environment=Environment.PRODUCTION, log_format=LogFormat.JSON)
    configure_logging(settings)
    buffer = io.StringIO()
    logging.getLogger().handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    return buffer


def test_probe_access_lines_stay_out_of_the_logs(captured_json_logs: io.StringIO) -> None:
    """A probe every 2 s per prober buries what happened: its access lines (a server's and
    the gateway's own upstream checks through httpx) are logged at DEBUG level only."""
    access = logging.getLogger("uvicorn.access")
    line = '%s - "%s %s HTTP/%s" %d'
    access.info(line, "10.0.0.1:5", "GET", "/healthz", "1.1", 200)
    access.info(line, "10.0.0.1:5", "GET", "/readyz?verbose=1", "1.1", 503)
    access.info(line, "10.0.0.1:5", "POST", "/api/auth/login", "1.1", 200)
    outgoing = 'HTTP Request: %s %s "%s %d %s"'
    httpx_log = logging.getLogger("httpx")
    httpx_log.info(outgoing, "GET", httpx.URL("http://auth:8081/healthz"), "HTTP/1.1", 200, "OK")
    httpx_log.info(outgoing, "POST", httpx.URL("http://auth:8081/api/x"), "HTTP/1.1", 200, "OK")
    lines = [json.loads(line)["event"] for line in captured_json_logs.getvalue().splitlines()]
    assert lines == [
        '10.0.0.1:5 - "POST /api/auth/login HTTP/1.1" 200',
        'HTTP Request: POST http://auth:8081/api/x "HTTP/1.1 200 OK"',
    ]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        access.info(line, "10.0.0.1:5", "GET", "/healthz", "1.1", 200)
    finally:
        root.setLevel(level)
    assert "/healthz" in captured_json_logs.getvalue()


def test_redaction_removes_secrets_from_every_log_event(captured_json_logs: io.StringIO) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    log = get_logger("test")
    log.info(
        "login",
        password="hunter2-secret",
        new_password="also-secret",
        headers={"Authorization": f"Bearer {jwt}", "Accept": "json"},
        api_key="ak-secret",
        dsn="postgresql://adx:pg-secret@db/adx",
        note=f"user sent {jwt} in a message",
        email="alice@acme.test",
    )
    logging.getLogger("library").warning("retrying with Authorization: Bearer lib-token-secret")
    text = captured_json_logs.getvalue()
    for secret in (
        "hunter2-secret",
        "also-secret",
        jwt,
        "ak-secret",
        "pg-secret",
        "lib-token-secret",
    ):
        assert secret not in text
    first = json.loads(text.splitlines()[0])
    assert first["password"] == "[REDACTED]"
    assert first["headers"]["Authorization"] == "[REDACTED]"
    assert first["headers"]["Accept"] == "json"  # what is not secret stays
    assert first["email"] == "alice@acme.test"
    assert first["level"] == "info"


async def test_correlation_id_is_bound_for_the_whole_request(
    captured_json_logs: io.StringIO,
) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        get_logger("handler").info("handling")
        return JSONResponse(
            {"bound": structlog.contextvars.get_contextvars().get("correlation_id")}
        )

    app = CorrelationIdMiddleware(Starlette(routes=[Route("/", endpoint)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        given = await c.get("/", headers={"X-Correlation-ID": "req-123"})
        generated = await c.get("/")
        hostile = await c.get("/", headers={"X-Correlation-ID": "bad id\nwith newline"})
    assert given.headers["x-correlation-id"] == "req-123"
    assert given.json()["bound"] == "req-123"
    assert len(generated.headers["x-correlation-id"]) == 32
    assert generated.json()["bound"] == generated.headers["x-correlation-id"]
    assert hostile.headers["x-correlation-id"] != "bad id\nwith newline"
    lines = [json.loads(line) for line in captured_json_logs.getvalue().splitlines()]
    assert (
        next(line["correlation_id"] for line in lines if line["event"] == "handling") == "req-123"
    )
