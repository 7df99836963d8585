"""``adx dev`` as a developer runs it (``make dev``), in a subprocess: Temporal, every service
in server and worker mode, the API gateway, every BFF and the router, with the development
seed data, on a port offset and a data dir of its own; stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adx.settings import DEFAULT_PORTS, REPO_ROOT

READY_TIMEOUT = 240.0


@dataclass
class DevStack:
    router_url: str  # the router's GraphQL endpoint
    gateway_url: str  # the API gateway's base URL
    log: Path


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_offset() -> int:
    """An ADX_PORT_OFFSET at which every default port of the stack is free."""
    for _ in range(50):
        offset = random.randrange(10_000, 55_000, 10)
        if all(port_is_free(port + offset) for port in DEFAULT_PORTS.values()):
            return offset
    raise RuntimeError("no port offset with every port free")


@asynccontextmanager
async def running_dev_stack(data_dir: Path, port_offset: int) -> AsyncIterator[DevStack]:
    """The stack on ``port_offset`` (0: the default ports), its log and data in ``data_dir``
    (which must exist)."""
    # The developer's ADX_* settings must not point this stack elsewhere.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ADX_") or key == "ADX_TEMPORAL_CLI_PATH"
    }
    env.update({"ADX_ENVIRONMENT": "dev", "ADX_LOG_LEVEL": "WARNING"})
    log = data_dir / "adx-dev.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adx",
            "dev",
            "--port-offset",
            str(port_offset),
            "--data-dir",
            str(data_dir / "data"),
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        router = f"http://127.0.0.1:{DEFAULT_PORTS['router'] + port_offset}"
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(READY_TIMEOUT):
            while "the stack is up" not in read_log(log):
                if process.returncode is not None:
                    pytest.fail(f"adx dev exited with {process.returncode}:\n{read_log(log)}")
                await asyncio.sleep(0.5)
            assert (await http.get(f"{router}/readyz")).status_code == 200
        gateway = f"http://127.0.0.1:{DEFAULT_PORTS['gateway'] + port_offset}"
        yield DevStack(router_url=f"{router}/graphql", gateway_url=gateway, log=log)
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Ctrl-C, as a developer stops it: the launcher stops every process it started."""
    for sig in (signal.SIGINT, signal.SIGINT):  # the second one: "kill it at once"
        if process.returncode is not None:
            return
        process.send_signal(sig)
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            continue
