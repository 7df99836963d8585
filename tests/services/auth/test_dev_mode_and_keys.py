"""Development mode (no SMTP: emails stay in the outbox, browsable at /dev/outbox), signing key
rotation by adding a key, and no seed data with production settings."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from adx.settings import Environment, Settings
from contracts.auth import UserRegistrationResult
from services.auth.activities import AuthComponents
from services.auth.service import SERVICE
from services.auth.store import AuthStore
from services.common.db import Database
from services.common.dev_seed import USERS
from services.common.service import ServiceRuntime
from tests.services.auth.support import (
    ALICE,
    PASSWORD,
    bearer,
    login,
    terminate_running_auth_workflows,
    unique_email,
)
from tests.support.services import running_service


def _pem() -> SecretStr:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SecretStr(pem.decode())


def _dev_settings(settings: Settings, folder: Path) -> Settings:
    return settings.model_copy(
        update={
            "environment": Environment.DEV,
            "database_url": f"sqlite+aiosqlite:///{folder / 'auth.sqlite'}",
            "smtp_host": None,
        }
    )


async def test_in_dev_emails_wait_in_the_outbox_and_the_link_there_works(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _dev_settings(settings, tmp_path)
    email = unique_email("pia")
    async with (
        running_service(SERVICE, configured) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as http,
    ):
        try:
            registered = await http.post(
                "/api/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert registered.status_code == 202
            entries: list[dict[str, Any]] = []
            for _ in range(100):
                listed = await http.get("/dev/outbox", params={"to": email})
                assert listed.status_code == 200
                entries = listed.json()
                if entries:
                    break
                await asyncio.sleep(0.1)
            (entry,) = entries
            assert entry["sent_at"] is None  # no SMTP in dev: kept for the developer
            link = next(line for line in entry["body"].splitlines() if "token=" in line)
            token = link.split("token=", 1)[1]
            verified = await http.get("/api/auth/verify", params={"token": token})
            assert verified.status_code == 200, verified.text
            handle = service.runtime.client.get_workflow_handle(
                registered.json()["operation_id"], result_type=UserRegistrationResult
            )
            assert (await handle.result()).status.value == "active"
            await login(http, email)
        finally:
            await terminate_running_auth_workflows(service.runtime.client)
            parts = service.runtime.components.get(AuthComponents)
            await parts.close()


async def test_signing_keys_rotate_by_adding_a_key(settings: Settings, tmp_path: Path) -> None:
    old, new = _pem(), _pem()
    before = settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}",
            "jwt_private_keys": {"k-old": old},
            "jwt_active_kid": "k-old",
        }
    )
    async with (
        running_service(SERVICE, before, worker=False) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as http,
    ):
        issued_before = await login(http, ALICE.email)
        assert [k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]] == [
            "k-old"
        ]
    assert jwt.get_unverified_header(issued_before["access_token"])["kid"] == "k-old"

    # The new key is added and made active; the old one stays listed until its tokens expire.
    after = before.model_copy(
        update={"jwt_private_keys": {"k-old": old, "k-new": new}, "jwt_active_kid": "k-new"}
    )
    async with (
        running_service(SERVICE, after, worker=False) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as http,
    ):
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert {k["kid"] for k in jwks["keys"]} == {"k-old", "k-new"}
        issued_after = await login(http, ALICE.email)
        assert jwt.get_unverified_header(issued_after["access_token"])["kid"] == "k-new"
        for tokens in (issued_before, issued_after):
            me = await http.get("/api/auth/me", headers=bearer(tokens["access_token"]))
            assert me.status_code == 200, me.text
        refreshed = await http.post(
            "/api/auth/refresh", json={"refresh_token": issued_before["refresh_token"]}
        )
        assert refreshed.status_code == 200
        assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == "k-new"


async def test_production_settings_never_seed(settings: Settings, tmp_path: Path) -> None:
    production = settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            "jwt_private_keys": {"k1": _pem()},
            "encryption_keys": {"p1": SecretStr(base64.b64encode(os.urandom(32)).decode())},
        }
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}", "auth")
    await db.migrate(SERVICE.migrations)
    try:
        runtime = ServiceRuntime(
            name="auth",
            settings=production,
            db=db,
            client=None,  # type: ignore[arg-type]  # on_start never talks to Temporal
            verifier=None,  # type: ignore[arg-type]
        )
        assert SERVICE.on_start is not None
        await SERVICE.on_start(runtime)
        store = AuthStore(db)
        for seed in USERS:
            assert await store.get_user(seed.id) is None
    finally:
        await db.dispose()
