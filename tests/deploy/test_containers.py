"""The container smoke test: the images built, docker-compose.yml brought up with real
containers (podman, with the offline override: no registry is reachable here), every
process ready, then the SDK's stack tests through the router (login, switchTenant,
onboardUser followed to COMPLETED, ...) and an upload scanned by clamd, then everything down.

The base image and build layers are cached outside the clone (deploy/offline/podman-env.sh),
so a second run builds nothing it built before.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adx.manifests import processes
from adx.settings import REPO_ROOT
from tests.router.conftest import run_node_tests
from tests.support.clamd import EICAR
from tests.support.ports import free_port

pytestmark = [pytest.mark.timeout(1800), pytest.mark.behaviour]

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.offline.yml")
READY_TIMEOUT = 300.0


def podman_environment() -> dict[str, str]:
    """This process's environment with deploy/offline/podman-env.sh applied."""
    script = REPO_ROOT / "deploy" / "offline" / "podman-env.sh"
    printed = subprocess.run(
        ["bash", "-c", f'. "{script}" && env -0'], capture_output=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in printed.decode().split("\0") if "=" in item)


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str]
    env_file: Path
    router_url: str
    gateway_url: str
    log: Path

    def compose(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "podman_compose", "-p", self.project]
        for file in COMPOSE_FILES:
            argv += ["-f", str(REPO_ROOT / file)]
        return [*argv, "--env-file", str(self.env_file), *args]

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    async def run(self, *argv: str, within: float = 120.0) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(within):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()
        return process.returncode or 0, output.decode(errors="replace")

    async def save_logs(self) -> None:
        _, logs = await self.run(*self.compose("logs"), within=60)
        self.log.write_text(logs)


async def build_images(env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(REPO_ROOT / "deploy" / "images" / "build.sh"),
        "--offline",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"the images did not build:\n{output.decode()[-8000:]}"


def env_file(folder: Path, ports: dict[str, int]) -> Path:
    """.env.example with fresh secrets (`adx secrets`) and free ports to publish on."""
    generated = subprocess.run(
        [sys.executable, "-m", "adx", "secrets"], capture_output=True, text=True, check=True
    ).stdout
    lines = [(REPO_ROOT / ".env.example").read_text(), generated]
    lines += [f"ADX_{name.upper()}_PUBLISH_PORT={port}" for name, port in ports.items()]
    path = folder / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


async def wait_until_ready(stack: ComposeStack) -> None:
    """Every ADX container's own health check says ready (the image's HEALTHCHECK with
    --ready: podman here does not schedule health checks itself)."""
    waiting = {p.k8s_name for p in processes()}
    async with asyncio.timeout(READY_TIMEOUT):
        while waiting:
            for service in sorted(waiting):
                status, _ = await stack.run(
                    "podman",
                    "exec",
                    stack.container(service),
                    "python",
                    "-m",
                    "adx.healthcheck",
                    "--ready",
                    within=20,
                )
                if status == 0:
                    waiting.discard(service)
            if waiting:
                await asyncio.sleep(2)


@asynccontextmanager
async def compose_stack(folder: Path) -> AsyncIterator[ComposeStack]:
    """The images built, the stack up and every process ready; down (volumes too) after."""
    env = podman_environment()
    await build_images(env)
    ports = {name: free_port() for name in ("router", "gateway", "temporal_ui", "codec")}
    stack = ComposeStack(
        project=f"adxsmoke{secrets.token_hex(3)}",
        env=env,
        env_file=env_file(folder, ports),
        router_url=f"http://127.0.0.1:{ports['router']}/graphql",
        gateway_url=f"http://127.0.0.1:{ports['gateway']}",
        log=folder / "compose.log",
    )
    try:
        # --no-deps: podman 4.3 cannot start a container whose --requires chain is longer
        # than one (podman-compose adds them); the start order stays compose's, and what
        # starts before its dependencies are up restarts until they are (restart: on-failure).
        status, output = await stack.run(*stack.compose("up", "-d", "--no-deps"), within=600)
        assert status == 0, output[-8000:]
        try:
            await wait_until_ready(stack)
        except TimeoutError:
            await stack.save_logs()
            pytest.fail(f"not every container became ready; logs in {stack.log}")
        yield stack
    finally:
        await stack.save_logs()
        await stack.run(*stack.compose("down", "-v", "-t", "5"), within=300)


# One test, one stack: its parts share the minutes the stack takes to build and start (and
# stay on one pytest worker).
async def test_the_system_runs_from_its_containers(
    tmp_path: Path,
    sdk_tests: Path,
) -> None:
    async with compose_stack(tmp_path) as stack:
        await every_process_is_a_container_of_its_own_as_a_non_root_user(stack)
        await the_sdks_stack_tests_pass(stack, sdk_tests)
        await an_upload_is_scanned_by_clamd(stack)


async def every_process_is_a_container_of_its_own_as_a_non_root_user(
    stack: ComposeStack,
) -> None:
    for process in processes():
        status, uid = await stack.run(
            "podman", "exec", stack.container(process.k8s_name), "id", "-u", within=20
        )
        assert status == 0, uid
        assert uid.strip() == "10001", process.name


async def the_sdks_stack_tests_pass(stack: ComposeStack, built: Path) -> None:
    # A production router runs the SDK's trusted documents only: the client sends hashes.
    env = {"ADX_ROUTER_URL": stack.router_url, "ADX_PERSISTED_DOCUMENTS": "1"}
    compiled = sorted((built / "stack").glob("*.test.js"))
    assert compiled
    for tests in compiled:
        await stack.save_logs()
        await run_node_tests(tests, env, stack.log)


async def an_upload_is_scanned_by_clamd(stack: ComposeStack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        login = await http.post(
            "/api/auth/login",
            json={"email": "alice@acme.test", "password": "dev-password-123", "tenant_id": "acme"},
        )
        assert login.status_code == 200, login.text
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}

        async def upload(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
            started = await http.post(
                "/api/file/uploads",
                content=data,
                headers={**auth, "content-type": "text/plain", "x-filename": name},
            )
            assert started.status_code == 202, started.text
            operation = started.json()["operation_id"]
            async with asyncio.timeout(120):
                while True:
                    answer = await http.get(f"/api/workflows/{operation}/result", headers=auth)
                    if answer.status_code != 202:
                        return started.json()["file_id"], answer.json()
                    await asyncio.sleep(0.5)

        clean_id, clean = await upload(os.urandom(2048).hex().encode(), "notes.txt")
        assert clean["status"] == "COMPLETED", clean
        assert clean["result"]["scanned"] is True
        infected_id, infected = await upload(EICAR, "eicar.txt")
        assert infected.get("status") != "COMPLETED", infected
        assert "malware" in json.dumps(infected)
        files = await http.get("/api/file/files", headers=auth)
        listed = {item["id"] for item in files.json()["items"]}
        assert clean_id in listed
        assert infected_id not in listed
