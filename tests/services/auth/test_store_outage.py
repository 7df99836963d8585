"""A store the auth service cannot reach answers 503 "unavailable" with a Retry-After (the
taxonomy's retryable kind), never a 500, and everything works again once it is back."""

from __future__ import annotations

from pathlib import Path

import httpx

from adx.settings import Settings
from services.auth.service import SERVICE
from tests.gateway_client.tcp_proxy import TcpProxy
from tests.services.auth.conftest import service_settings
from tests.services.auth.support import ALICE, PASSWORD
from tests.support.servers import RedisServer
from tests.support.services import running_service
from tests.support.smtp import Mailbox


async def test_sessions_in_an_unreachable_redis_are_unavailable_not_an_error(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox, redis_server: RedisServer
) -> None:
    proxy = TcpProxy(redis_server.port)
    await proxy.start()
    configured = service_settings(
        settings, tmp_path, smtp_server, redis_url=f"redis://127.0.0.1:{proxy.port}/4"
    )
    credentials = {"email": ALICE.email, "password": PASSWORD, "tenant_id": "acme"}
    try:
        async with (
            running_service(SERVICE, configured, worker=False) as running,
            httpx.AsyncClient(base_url=running.url, timeout=30) as http,
        ):
            assert (await http.post("/api/auth/login", json=credentials)).status_code == 200
            await proxy.cut()
            refused = await http.post("/api/auth/login", json=credentials)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["detail"] == "the session store is unavailable"
            await proxy.restore()
            assert (await http.post("/api/auth/login", json=credentials)).status_code == 200
    finally:
        await proxy.cut()
