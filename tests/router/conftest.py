"""The real stack behind the supergraph router: every BFF in ``BFFS`` served over HTTP/WS on the
session's Temporal dev server, the router (``adx schema router``: the schema composed from the
code, GraphQL Hive Gateway) in front of them on a free port, and a small control endpoint the
Node tests call to get tokens and start demo workflows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from adx.settings import REPO_ROOT, Settings
from contracts.context import RequestContext
from graph.runtime import BFFS, load
from tests.support.bff import issue_token, running_bff
from tests.support.demo import _reset_flows, client, demo_queue, demo_worker
from tests.support.devstack import DevStack, free_port_offset, read_log, running_dev_stack
from tests.support.http import serve_app
from tests.support.servers import free_port
from tests.workflow_client.flows import StepsInput
from workflow_client.operations import WorkflowOperations

__all__ = ["_reset_flows", "client", "demo_queue", "demo_worker"]

ROUTER_READY_TIMEOUT = 90.0


@dataclass
class Router:
    url: str  # the GraphQL endpoint, http://127.0.0.1:PORT/graphql
    port: int
    subgraphs: dict[str, str]  # name -> the BFF's base URL
    log: Path


@pytest.fixture(scope="module")
def operations(client: Client, demo_queue: str, demo_worker: None) -> WorkflowOperations:
    # The demo workflows run on the test's queue.
    return WorkflowOperations(client, task_queues={"demo_steps": demo_queue})


# The micro-frontends' origins the router is configured with in these tests.
WEB_ORIGINS = ["http://localhost:3000", "http://localhost:3001"]


@pytest.fixture(scope="module")
async def router(
    settings: Settings, operations: WorkflowOperations, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Router]:
    async with AsyncExitStack() as stack:
        subgraphs: dict[str, str] = {}
        for name in sorted(BFFS):
            url, _deps = await stack.enter_async_context(
                running_bff(load(name), settings, operations=operations)
            )
            subgraphs[name] = url
        yield await stack.enter_async_context(
            router_process(subgraphs, tmp_path_factory.mktemp("router"))
        )


@asynccontextmanager
async def router_process(
    subgraphs: dict[str, str],
    data_dir: Path,
    environment: str = "test",
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Router]:
    """``adx schema router`` (what ``make dev`` runs) on a free port, in front of
    ``subgraphs`` (name -> URL), until the block ends; ``settings``: more ``ADX_*``
    variables."""
    port = free_port()
    ports = {"router": port}
    ports.update({f"bff_{name}": port_of(url) for name, url in subgraphs.items()})
    log = data_dir / "router.log"
    env = {
        **os.environ,
        "ADX_ENVIRONMENT": environment,
        "ADX_HOST": "127.0.0.1",
        "ADX_PORT_OFFSET": "0",
        "ADX_PORTS": json.dumps(ports),
        "ADX_DATA_DIR": str(data_dir),
        "ADX_LOG_LEVEL": "WARNING",
        "ADX_CORS_ORIGINS": json.dumps(WEB_ORIGINS),
        **(settings or {}),
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adx",
            "schema",
            "router",
            env=env,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", process, log)
        yield Router(
            url=f"http://127.0.0.1:{port}/graphql", port=port, subgraphs=subgraphs, log=log
        )
    finally:
        await _stop(process)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(ROUTER_READY_TIMEOUT):
        while True:
            if process.returncode is not None:
                pytest.fail(f"the router exited with {process.returncode}:\n{read_log(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # its own session: the gateway and nothing else
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


# The control endpoint ------------------------------------------------------------------------


class StartRequest(BaseModel):
    steps: int = 3
    delayMs: int = 0  # camelCase: JSON from the Node tests
    # "running": just started; "cancelled": cancelled and closed (something to retry)
    state: str = "running"
    who: str = "alice"


@dataclass
class People:
    alice: RequestContext
    mallory: RequestContext

    def get(self, who: str) -> RequestContext:
        person: RequestContext = getattr(self, who)
        return person


@pytest.fixture(scope="module")
def people() -> People:
    return People(
        alice=RequestContext(
            user_id="alice@acme.test",
            tenant_id=f"acme-{uuid.uuid4().hex[:6]}",
            roles=("owner", "member"),
        ),
        mallory=RequestContext(
            user_id="mallory@globex.test", tenant_id=f"globex-{uuid.uuid4().hex[:6]}"
        ),
    )


@pytest.fixture(scope="module")
async def control(
    settings: Settings, operations: WorkflowOperations, people: People
) -> AsyncIterator[str]:
    """``POST /token {"who"}`` -> a real access token; ``POST /operations {steps, delayMs,
    state, who}`` -> a demo_steps operation of that person (what a start mutation will do once
    the subgraphs have one the tests can drive)."""

    async def token(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        who = people.get(str(body.get("who", "alice")))
        return JSONResponse(
            {
                "token": issue_token(settings, who),
                "userId": who.user_id,
                "tenantId": who.tenant_id,
            }
        )

    async def start(request: Request) -> JSONResponse:
        wanted = StartRequest.model_validate(await request.json())
        who = people.get(wanted.who)
        steps = StepsInput(
            label=uuid.uuid4().hex[:8], steps=wanted.steps, step_delay_ms=wanted.delayMs
        )
        operation = await operations.start(who, "demo_steps", steps)
        if wanted.state == "cancelled":
            await operations.cancel(who, operation.id, "cancelled by the test")
            async with asyncio.timeout(30):
                while not (await operations.describe(who, operation.id)).status.is_terminal:
                    await asyncio.sleep(0.05)
        return JSONResponse({"id": operation.id})

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/operations", start, methods=["POST"]),
        ]
    )
    async with serve_app(app) as url:
        yield url


SDK_DIR = REPO_ROOT / "sdk"
NODE_TIMEOUT = 240.0
NODE_SUMMARY = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.MULTILINE)


async def run_node_tests(compiled: Path, env: dict[str, str], server_log: Path) -> None:
    """Runs one compiled test file with node's test runner and fails unless every test in it
    ran and passed (none failed, cancelled, skipped or left as todo)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        "--test",
        "--test-reporter=tap",
        str(compiled),
        cwd=SDK_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(NODE_TIMEOUT):
            raw, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        raw, _ = await process.communicate()
        pytest.fail(f"node --test {compiled.name} timed out:\n{raw.decode()}")
    output = raw.decode()
    summary = {name: int(count) for name, count in NODE_SUMMARY.findall(output)}
    assert process.returncode == 0, (
        f"node --test {compiled.name} failed:\n{output}\n--- server log ---\n"
        f"{read_log(server_log)[-20000:]}"
    )
    assert summary.get("tests", 0) > 0, output
    assert summary.get("pass") == summary["tests"], output
    assert summary.get("fail") == summary.get("cancelled") == 0, output
    assert summary.get("skipped") == summary.get("todo") == 0, output


@pytest.fixture(scope="module")
async def sdk_tests() -> Path:
    """The SDK and its tests compiled (tsc --strict) to sdk/build/."""
    tsc = SDK_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.fail("sdk/node_modules is missing: run `make sdk-deps` (make test does)")
    process = await asyncio.create_subprocess_exec(
        str(tsc),
        "-p",
        "tsconfig.test.json",
        cwd=SDK_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"tsc failed:\n{output.decode()}"
    return SDK_DIR / "build" / "test"


# The whole development stack ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevStack]:
    """``adx dev`` as a developer runs it, on free ports and a data dir of its own."""
    data_dir = tmp_path_factory.mktemp("dev-stack")
    async with running_dev_stack(data_dir, free_port_offset()) as stack:
        yield stack
