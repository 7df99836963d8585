"""`adx dev` end to end, as a developer runs it: a real Temporal dev server on free ports,
its namespaces and search attributes, the UI, a clean Ctrl-C, data kept across restarts,
and a killed server brought back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from adx.devstack.readiness import tcp_accepts
from adx.devstack.table import READY_TITLE
from adx.devstack.temporal import SEARCH_ATTRIBUTES
from adx.settings import Settings

START_SECONDS = 45.0
STOP_SECONDS = 30.0
TEMPORAL_CLI = str(Path(sys.executable).parent / "temporal")

pytestmark = pytest.mark.timeout(120)


class DevCommand:
    """``python -m adx dev ...`` in a subprocess, its stdout and stderr collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, needle: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while needle not in self.text:
            if self.process.returncode is not None:
                await self._reader
                pytest.fail(
                    f"adx dev exited ({self.process.returncode}) before {needle!r}:\n{self.text}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} after {seconds} s:\n{self.text}")
            await asyncio.sleep(0.1)

    async def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the launcher only (children are in their own sessions anyway)."""
        self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
        await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        with suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


@pytest.fixture
def dev_env(dev_settings: Settings) -> dict[str, str]:
    """The launcher's environment: free ports, a temp data dir, nothing from the developer's
    own ADX_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ADX_")}
    env["ADX_PORTS"] = json.dumps(dev_settings.ports)
    env["ADX_DATA_DIR"] = str(dev_settings.data_dir)
    env["ADX_ENVIRONMENT"] = "dev"
    return env


def server_pids(settings: Settings) -> list[int]:
    """Temporal servers using this test's database file (its path is unique to the test)."""
    db_file = settings.data_dir / "temporal" / "temporal.sqlite"
    found = subprocess.run(
        ["pgrep", "-f", str(db_file)], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


StartDev = Callable[..., Awaitable[DevCommand]]


@pytest.fixture
async def start_dev(
    dev_env: dict[str, str], dev_settings: Settings, tmp_path: Path
) -> AsyncIterator[StartDev]:
    """Starts `adx dev`; afterwards kills whatever is left: the launchers and any Temporal
    server on this test's database."""
    started: list[DevCommand] = []

    async def start(*args: str) -> DevCommand:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adx", "dev", *args,
            env=dev_env,
            cwd=tmp_path,  # no .env of the repository is read
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        started.append(DevCommand(process))
        return started[-1]

    try:
        yield start
    finally:
        for command in started:
            await command.kill()
        for pid in server_pids(dev_settings):  # only servers on this test's database
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def temporal(settings: Settings, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        TEMPORAL_CLI, *args, "--address", settings.effective_temporal_address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, f"temporal {' '.join(args)}:\n{out.decode()}"
    return out.decode()


async def namespaces(settings: Settings) -> set[str]:
    listed = json.loads(await temporal(settings, "operator", "namespace", "list", "-o", "json"))
    return {entry["namespaceInfo"]["name"] for entry in listed}


async def test_dev_serves_temporal_keeps_data_and_stops_cleanly(
    start_dev: StartDev, dev_settings: Settings
) -> None:
    settings = dev_settings
    first = await start_dev("--only", "temporal")
    await first.wait_for(READY_TITLE)

    grpc, ui = settings.port("temporal"), settings.port("temporal_ui")
    assert f"Temporal gRPC        127.0.0.1:{grpc}" in first.text
    assert f"Temporal UI          http://127.0.0.1:{ui}" in first.text
    assert "Temporal namespaces  default, development, staging, production" in first.text
    assert f"Data dir             {settings.data_dir}" in first.text
    assert "Codec server" not in first.text  # --only temporal
    [server_pid] = server_pids(settings)

    assert {"default", "development", "staging", "production"} <= await namespaces(settings)
    listed = json.loads(
        await temporal(
            settings, "operator", "search-attribute", "list", "-n", "development", "-o", "json"
        )
    )
    for name in SEARCH_ATTRIBUTES:
        assert listed["customAttributes"][name] == "INDEXED_VALUE_TYPE_KEYWORD"
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.get(f"http://127.0.0.1:{ui}/")).status_code == 200

    kept_namespace = f"kept-{uuid.uuid4().hex[:8]}"
    await temporal(settings, "operator", "namespace", "create", "--namespace", kept_namespace)
    await temporal(
        settings, "workflow", "start", "--namespace", "development", "--type", "KeptWorkflow",
        "--task-queue", "kept", "--workflow-id", "kept-workflow",
    )  # fmt: skip

    assert await first.interrupt() == 0
    assert not alive(server_pid)
    assert server_pids(settings) == []
    assert not await tcp_accepts("127.0.0.1", grpc)

    second = await start_dev("--only", "temporal")
    await second.wait_for(READY_TITLE)

    assert kept_namespace in await namespaces(settings)
    described = await temporal(
        settings, "workflow", "describe", "--namespace", "development",
        "--workflow-id", "kept-workflow", "-o", "json",
    )  # fmt: skip
    assert json.loads(described)["workflowExecutionInfo"]["type"]["name"] == "KeptWorkflow"
    assert await second.interrupt() == 0
    assert server_pids(settings) == []


async def test_killed_temporal_is_reported_and_restarted(
    start_dev: StartDev, dev_settings: Settings
) -> None:
    settings = dev_settings
    dev = await start_dev("--only", "temporal", "--data-dir", str(settings.data_dir))
    await dev.wait_for(READY_TITLE)
    [old_pid] = server_pids(settings)

    os.kill(old_pid, signal.SIGKILL)

    await dev.wait_for(f"temporal exited unexpectedly: killed by signal SIGKILL (pid {old_pid}")
    await dev.wait_for("restarting temporal in 1 s")
    await dev.wait_for("+++ temporal is ready again")
    report = dev.text.split("temporal exited unexpectedly", 1)[1]
    assert "lines:" in report
    assert "temporal | Temporal Server:" in report  # its last log lines are repeated
    assert await tcp_accepts("127.0.0.1", settings.port("temporal"))
    [new_pid] = server_pids(settings)
    assert new_pid != old_pid
    assert {"development", "staging", "production"} <= await namespaces(settings)

    assert await dev.interrupt() == 0
    assert server_pids(settings) == []
    assert not alive(new_pid)


async def test_search_attributes_reach_namespaces_of_an_older_database(
    start_dev: StartDev, dev_settings: Settings
) -> None:
    """The dev server registers --search-attribute only in namespaces it creates, so a database
    made before an attribute existed would lack it; the launcher adds what is missing."""
    settings = dev_settings
    db_file = settings.data_dir / "temporal" / "temporal.sqlite"
    db_file.parent.mkdir(parents=True)
    older = await asyncio.create_subprocess_exec(
        TEMPORAL_CLI, "server", "start-dev", "--headless", "--log-level", "error",
        "--ip", "127.0.0.1", "--port", str(settings.port("temporal")),
        "--db-filename", str(db_file), "--namespace", "development",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_SECONDS
        while not await tcp_accepts("127.0.0.1", settings.port("temporal")):
            assert time.monotonic() < deadline, "the older server did not start"
            await asyncio.sleep(0.1)
        before = json.loads(
            await temporal(
                settings, "operator", "search-attribute", "list", "-n", "development", "-o", "json"
            )
        )
        assert "TenantId" not in (before.get("customAttributes") or {})
    finally:
        older.send_signal(signal.SIGTERM)
        await asyncio.wait_for(older.wait(), STOP_SECONDS)

    dev = await start_dev("--only", "temporal")
    await dev.wait_for(READY_TITLE)

    after = json.loads(
        await temporal(
            settings, "operator", "search-attribute", "list", "-n", "development", "-o", "json"
        )
    )
    for name in SEARCH_ATTRIBUTES:
        assert after["customAttributes"].get(name) == "INDEXED_VALUE_TYPE_KEYWORD", (
            after,
            dev.text,
        )
    assert "registered search attributes" in dev.text
    assert await dev.interrupt() == 0
