"""Gateway resilience against real processes: the breaker of a stopped service, JWKS key
rotation, rate limits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from gateway.app import create_gateway_app
from tests.gateway.conftest import ALICE, gateway_settings
from tests.support.bff import issue_token, jwks_endpoint
from tests.support.http import serve_app
from tests.support.servers import free_port, wait_for_port


@contextmanager
def user_server_process(
    settings: Settings, port: int, database: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        "PATH": os.environ["PATH"],
        "ADX_ENVIRONMENT": "test",
        "ADX_TEMPORAL_ADDRESS": settings.temporal_address or "",
        "ADX_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "ADX_DATA_DIR": str(settings.data_dir),
        "ADX_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "ADX_PORTS": f'{{"user": {port}}}',
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "adx", "service", "user", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@asynccontextmanager
async def gateway(settings: Settings, client: Client) -> AsyncIterator[str]:
    async with serve_app(create_gateway_app(settings, client=client), lifespan=True) as url:
        yield url


async def test_breaker_opens_when_the_service_stops_and_closes_when_it_is_back(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    database = tmp_path / "user.sqlite"
    async with jwks_endpoint(settings) as jwks_url:
        config = gateway_settings(
            settings,
            jwks_url,
            upstream,
            gateway_breaker_threshold=3,
            gateway_breaker_cooldown_seconds=1.0,
            gateway_health_interval_seconds=3600,  # the breaker, not health checks, decides
        )
        headers = {"Authorization": f"Bearer {issue_token(settings, ALICE)}"}
        with ExitStack() as first_run:
            first_run.enter_context(user_server_process(settings, port, database))
            async with gateway(config, client) as url, httpx.AsyncClient(timeout=30) as http:
                assert (await http.get(f"{url}/api/user/me", headers=headers)).status_code == 200
                first_run.close()  # the service process stops
                # Failures count until the breaker opens; then it answers at once.
                answers = [
                    (await http.get(f"{url}/api/user/me", headers=headers)) for _ in range(5)
                ]
                assert [a.status_code for a in answers[:3]] == [502, 502, 502]
                opened = answers[3]
                assert opened.status_code == 503
                assert opened.json()["service"] == "user"
                assert "user" in opened.json()["detail"]
                breaker = f'gateway_breaker_state{{breaker="user@{upstream}"}}'
                assert f"{breaker} 2.0" in (await http.get(f"{url}/metrics")).text
                with user_server_process(settings, port, database):
                    await asyncio.sleep(1.1)  # the cool-down: half-open lets a request through
                    assert (
                        await http.get(f"{url}/api/user/me", headers=headers)
                    ).status_code == 200
                    assert (
                        await http.get(f"{url}/api/user/me", headers=headers)
                    ).status_code == 200
                assert f"{breaker} 0.0" in (await http.get(f"{url}/metrics")).text


async def test_jwks_rotation_is_picked_up_without_restart(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    old = settings.model_copy(update={"data_dir": tmp_path / "old"})
    new = settings.model_copy(update={"data_dir": tmp_path / "new"})
    published: list[dict[str, Any]] = list(SigningKeys.from_settings(old).jwks()["keys"])

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse({"keys": published})

    async with serve_app(Starlette(routes=[Route("/jwks", jwks)])) as jwks_url:
        config = gateway_settings(settings, f"{jwks_url}/jwks", "http://127.0.0.1:9")
        async with gateway(config, client) as url, httpx.AsyncClient(timeout=30) as http:

            async def status_with(key_settings: Settings) -> int:
                token, _ = SigningKeys.from_settings(key_settings).issue(
                    key_settings,
                    user_id=ALICE.user_id,
                    tenant_id="acme",
                    session_id="s",
                    token_type=TokenType.ACCESS,
                    roles=["member"],
                )
                response = await http.get(
                    f"{url}/api/workflows", headers={"Authorization": f"Bearer {token}"}
                )
                return response.status_code

            assert await status_with(old) == 200
            assert await status_with(new) == 401  # an unknown key is refused...
            published.extend(SigningKeys.from_settings(new).jwks()["keys"])
            await asyncio.sleep(5.1)  # ...and the refresh on unknown kids is rate-limited
            assert await status_with(new) == 200  # the rotated key is fetched on demand
            assert await status_with(old) == 200  # and the old one still verifies


async def test_rate_limit_answers_429_with_retry_after(settings: Settings, client: Client) -> None:
    async with jwks_endpoint(settings) as jwks_url:
        config = gateway_settings(
            settings, jwks_url, "http://127.0.0.1:9", gateway_rate_limit_user="3/minute"
        )
        headers = {"Authorization": f"Bearer {issue_token(settings, ALICE)}"}
        async with gateway(config, client) as url, httpx.AsyncClient(timeout=30) as http:
            statuses = [
                (await http.get(f"{url}/api/workflows", headers=headers)).status_code
                for _ in range(4)
            ]
            limited = await http.get(f"{url}/api/workflows", headers=headers)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["detail"] == "the user rate limit is exhausted"


@pytest.mark.behaviour
async def test_a_hung_service_is_answered_503_and_a_slow_live_one_is_waited_for(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    """A stopped process (SIGSTOP: its port still accepts connections, nothing answers) gets
    a 503 once its health probe fails too, not a wait for the 30 s request timeout; a live
    service that takes longer than the probe period (a request waiting on a workflow) is
    not cut off."""
    port = free_port()

    async def slow(_request: Request) -> JSONResponse:
        await asyncio.sleep(3.5)
        return JSONResponse({"slow": True})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    live = Starlette(routes=[Route("/api/user/slow", slow), Route("/healthz", healthz)])
    headers = {"Authorization": f"Bearer {issue_token(settings, ALICE)}"}
    async with jwks_endpoint(settings) as jwks_url, serve_app(live) as live_url:
        config = gateway_settings(settings, jwks_url, live_url)
        async with gateway(config, client) as url, httpx.AsyncClient(timeout=15) as http:
            answer = await http.get(f"{url}/api/user/slow", headers=headers)
            assert answer.status_code == 200
            assert answer.json() == {"slow": True}

        config = gateway_settings(settings, jwks_url, f"http://127.0.0.1:{port}")
        with user_server_process(settings, port, tmp_path / "user.sqlite") as process:
            async with gateway(config, client) as url, httpx.AsyncClient(timeout=15) as http:
                assert (await http.get(f"{url}/api/user/me", headers=headers)).status_code == 200
                os.kill(process.pid, signal.SIGSTOP)
                try:
                    hung = await http.get(f"{url}/api/user/me", headers=headers)
                finally:
                    os.kill(process.pid, signal.SIGCONT)
                assert hung.status_code == 503
                assert hung.headers["content-type"].startswith("application/problem+json")
                assert hung.json()["service"] == "user"
                assert hung.json()["detail"] == "the user service did not answer in time"
                assert "retry-after" in hung.headers
