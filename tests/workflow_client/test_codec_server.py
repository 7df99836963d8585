"""The codec server: Temporal's /encode and /decode protocol, CORS for the UI, bearer auth,
in-process (ASGI) and over real HTTP on loopback (in-process uvicorn and the `adx` command)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from google.protobuf import json_format
from pydantic import SecretStr
from starlette.applications import Starlette
from temporalio.api.common.v1 import Payload, Payloads

from adx.settings import Environment, Settings
from tests.support.servers import free_port
from workflow_client.codec import EncryptionCodec, KeyRing
from workflow_client.codec_server import (
    CodecServerConfigError,
    add_arguments,
    allowed_origins,
    create_codec_app,
)

KEY = bytes(range(7, 39))
TOKEN = "codec-test-token-5f1e"
EXTRA_ORIGIN = "https://temporal.example.com"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "environment": Environment.TEST,
        "host": "127.0.0.1",
        "port_offset": 0,
        "ports": {},
        "encryption_keys": {},
        "encryption_active_key_id": None,
        "codec_server_token": SecretStr(TOKEN),
        "codec_cors_origins": [EXTRA_ORIGIN + "/"],
    }
    fields.update(overrides)
    return Settings(_env_file=None, **fields)


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(active_key_id="srv-1", keys={"srv-1": KEY})


@pytest.fixture
def settings_with_token(tmp_path: Path) -> Settings:
    return make_settings(data_dir=tmp_path)


@pytest.fixture
def app(settings_with_token: Settings, keyring: KeyRing) -> Starlette:
    return create_codec_app(settings_with_token, keyring)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec.test") as client:
        yield client


def payloads_json(payloads: list[Payload]) -> dict[str, Any]:
    document: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return document


def parse_payloads(document: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(document, Payloads()).payloads)


def plain_payloads() -> list[Payload]:
    return [
        Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"lin@example.com"}'),
        Payload(metadata={"encoding": b"binary/null"}),
        Payload(metadata={"encoding": b"binary/plain"}, data=bytes(range(256))),
    ]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    return body


# Protocol -----------------------------------------------------------------------------------


async def test_encode_then_decode_round_trip(http: httpx.AsyncClient) -> None:
    sent = payloads_json(plain_payloads())

    encoded = await http.post("/encode", json=sent, headers=AUTH)
    assert encoded.status_code == 200
    assert encoded.headers["cache-control"] == "no-store"
    sealed = parse_payloads(encoded.json())
    assert {p.metadata["encoding"] for p in sealed} == {b"binary/encrypted"}
    assert b"lin@example.com" not in b"".join(p.data for p in sealed)

    decoded = await http.post("/decode", json=encoded.json(), headers=AUTH)

    assert decoded.status_code == 200
    assert decoded.json() == sent
    assert parse_payloads(decoded.json()) == plain_payloads()


async def test_decode_reads_what_the_sdk_codec_wrote(
    http: httpx.AsyncClient, keyring: KeyRing
) -> None:
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())

    response = await http.post("/decode", json=payloads_json(sealed), headers=AUTH)

    assert response.status_code == 200
    assert parse_payloads(response.json()) == plain_payloads()
    first = response.json()["payloads"][0]
    assert base64.b64decode(first["data"]) == b'{"email":"lin@example.com"}'
    assert base64.b64decode(first["metadata"]["encoding"]) == b"json/plain"


async def test_decode_passes_unencrypted_payloads_through(http: httpx.AsyncClient) -> None:
    sent = payloads_json(plain_payloads())

    response = await http.post("/decode", json=sent, headers=AUTH)

    assert response.status_code == 200
    assert response.json() == sent


async def test_namespace_prefixed_paths_work(http: httpx.AsyncClient, keyring: KeyRing) -> None:
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())

    decoded = await http.post(
        "/development/decode",
        json=payloads_json(sealed),
        headers={**AUTH, "X-Namespace": "development"},
    )
    encoded = await http.post("/staging/encode", json=payloads_json(plain_payloads()), headers=AUTH)

    assert decoded.status_code == 200
    assert parse_payloads(decoded.json()) == plain_payloads()
    assert encoded.status_code == 200
    assert await EncryptionCodec(keyring).decode(parse_payloads(encoded.json())) == (
        plain_payloads()
    )


async def test_empty_batch_answers_an_empty_list(http: httpx.AsyncClient) -> None:
    response = await http.post("/decode", json={}, headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {"payloads": []}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"payloads": 5}', id="payloads-not-a-list"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'{"payloads": [{"metadata": {"encoding": "abcde"}}]}', id="bad-base64"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
async def test_bad_body_is_a_400_problem(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/decode", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )

    problem = assert_problem(response, 400)
    assert "payloads" in problem["detail"]


async def test_non_json_content_type_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/decode", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}
    )

    assert_problem(response, 415)


async def test_undecryptable_payload_is_a_422_naming_the_key_id(http: httpx.AsyncClient) -> None:
    foreign = KeyRing(active_key_id="someone-elses", keys={"someone-elses": bytes(32)})
    sealed = await EncryptionCodec(foreign).encode(plain_payloads()[:1])

    response = await http.post("/decode", json=payloads_json(sealed), headers=AUTH)

    problem = assert_problem(response, 422)
    assert "'someone-elses'" in problem["detail"]
    assert KEY.hex() not in response.text


async def test_healthz_needs_no_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_path_is_a_404_problem(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/nope/nothing/here"), 404)
    assert_problem(await http.get("/decode"), 405)


# Auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong-token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-prefix-only"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    ],
)
@pytest.mark.parametrize("path", ["/decode", "/encode", "/development/decode"])
async def test_requests_without_the_right_token_are_401(
    http: httpx.AsyncClient, keyring: KeyRing, headers: dict[str, str], path: str
) -> None:
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())

    response = await http.post(path, json=payloads_json(sealed), headers=headers)

    problem = assert_problem(response, 401)
    assert problem["title"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "lin@example.com" not in response.text
    assert TOKEN not in response.text


async def test_token_scheme_is_case_insensitive(http: httpx.AsyncClient) -> None:
    response = await http.post("/decode", json={}, headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200


async def test_without_a_token_dev_serves_unauthenticated(tmp_path: Path, keyring: KeyRing) -> None:
    settings = make_settings(data_dir=tmp_path, codec_server_token=None)
    app = create_codec_app(settings, keyring)
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec.test") as client:
        response = await client.post("/decode", json=payloads_json(sealed))

    assert response.status_code == 200
    assert parse_payloads(response.json()) == plain_payloads()


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("   ")])
def test_production_without_a_token_refuses_to_start(
    tmp_path: Path, keyring: KeyRing, token: SecretStr | None
) -> None:
    settings = make_settings(
        data_dir=tmp_path, environment=Environment.PRODUCTION, codec_server_token=token
    )

    with pytest.raises(CodecServerConfigError, match="ADX_CODEC_SERVER_TOKEN"):
        create_codec_app(settings, keyring)


async def test_production_serves_without_a_token_only_when_told_it_is_anonymous(
    tmp_path: Path, keyring: KeyRing
) -> None:
    """docker-compose.yml: the browser's Temporal UI has no token to send, so the codec server
    is published on loopback alone and says so."""
    settings = make_settings(
        data_dir=tmp_path,
        environment=Environment.PRODUCTION,
        codec_server_token=None,
        codec_server_anonymous=True,
    )
    app = create_codec_app(settings, keyring)
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec.test") as client:
        response = await client.post("/decode", json=payloads_json(sealed))
    assert response.status_code == 200
    assert parse_payloads(response.json()) == plain_payloads()


async def test_the_codec_server_serves_its_request_metrics(http: httpx.AsyncClient) -> None:
    assert (
        await http.post("/decode", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    ).status_code == 200
    metrics = (await http.get("/metrics")).text.splitlines()
    assert 'codec_requests_total{method="POST",route="/decode",status="200"} 1.0' in metrics


# CORS ---------------------------------------------------------------------------------------


def test_allowed_origins_are_the_ui_and_the_configured_ones(settings_with_token: Settings) -> None:
    assert allowed_origins(settings_with_token) == [
        "http://127.0.0.1:8088",
        "http://localhost:8088",
        EXTRA_ORIGIN,
    ]
    offset = make_settings(data_dir=settings_with_token.data_dir, port_offset=100, host="10.1.2.3")
    assert allowed_origins(offset) == ["http://10.1.2.3:8188", EXTRA_ORIGIN]


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8088", "http://localhost:8088", EXTRA_ORIGIN])
@pytest.mark.parametrize("path", ["/decode", "/encode", "/development/decode"])
async def test_preflight_allows_the_ui_without_a_token(
    http: httpx.AsyncClient, origin: str, path: str
) -> None:
    response = await http.options(path, headers=preflight_headers(origin))

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"content-type", "x-namespace", "authorization"} <= allowed


async def test_preflight_refuses_other_origins(http: httpx.AsyncClient) -> None:
    response = await http.options("/decode", headers=preflight_headers("https://evil.example"))

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_cors_headers_on_actual_responses_even_401(http: httpx.AsyncClient) -> None:
    origin = "http://localhost:8088"
    ok = await http.post("/decode", json={}, headers={**AUTH, "Origin": origin})
    denied = await http.post("/decode", json={}, headers={"Origin": origin})
    foreign = await http.post(
        "/decode", json={}, headers={**AUTH, "Origin": "https://evil.example"}
    )

    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == origin
    # The UI can read why it was refused.
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in foreign.headers


# Real HTTP on loopback ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_round_trip_over_real_http(app: Starlette, keyring: KeyRing) -> None:
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        preflight = await client.options(
            "/development/decode", headers=preflight_headers("http://localhost:8088")
        )
        decoded = await client.post("/development/decode", json=payloads_json(sealed), headers=AUTH)
        encoded = await client.post("/encode", json=payloads_json(plain_payloads()), headers=AUTH)
        redecoded = await client.post("/decode", json=encoded.json(), headers=AUTH)
        denied = await client.post("/decode", json=payloads_json(sealed))

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8088"
    assert decoded.status_code == 200
    assert parse_payloads(decoded.json()) == plain_payloads()
    assert parse_payloads(redecoded.json()) == plain_payloads()
    assert_problem(denied, 401)


# The `adx codec-server` command -------------------------------------------------------------


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADX_")}
    env.update(
        ADX_ENVIRONMENT="test",
        ADX_DATA_DIR=str(tmp_path / "data"),
        ADX_LOG_FORMAT="json",
        ADX_ENCRYPTION_KEYS=json.dumps({"srv-1": base64.b64encode(KEY).decode()}),
    )
    env.update(extra)
    return env


async def run_command(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adx",
        "codec-server",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def test_command_arguments_default_to_settings() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)

    assert vars(parser.parse_args([])) == {"host": None, "port": None}
    assert vars(parser.parse_args(["--host", "0.0.0.0", "--port", "9999"])) == {
        "host": "0.0.0.0",
        "port": 9999,
    }


async def test_command_help(tmp_path: Path) -> None:
    code, out, _err = await run_command("--help", env=command_env(tmp_path), cwd=tmp_path)

    assert code == 0
    assert "--host" in out
    assert "--port" in out


async def test_command_serves_over_loopback(tmp_path: Path, keyring: KeyRing) -> None:
    port = free_port()
    env = command_env(tmp_path, ADX_CODEC_SERVER_TOKEN=TOKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adx",
        "codec-server",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    sealed = await EncryptionCodec(keyring).encode(plain_payloads())
    try:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for _ in range(300):
                assert process.returncode is None, "the codec server exited early"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            decoded = await client.post("/decode", json=payloads_json(sealed), headers=AUTH)
            denied = await client.post("/decode", json=payloads_json(sealed))
    finally:
        process.send_signal(signal.SIGTERM)
        _out, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert decoded.status_code == 200
    assert parse_payloads(decoded.json()) == plain_payloads()
    assert denied.status_code == 401
    logs = stderr.decode()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells the truth.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in logs
    assert "codec_server_starting" in logs
    for secret in (TOKEN, base64.b64encode(KEY).decode(), "lin@example.com"):
        assert secret not in logs


async def test_command_refuses_production_without_token(tmp_path: Path) -> None:
    env = command_env(tmp_path, ADX_ENVIRONMENT="production")

    code, _out, err = await run_command("--port", str(free_port()), env=env, cwd=tmp_path)

    assert code == 2
    assert "ADX_CODEC_SERVER_TOKEN" in err
