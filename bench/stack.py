"""The system under test: each part in its own process, on free loopback ports, with a fresh
data dir; started here, stopped here by PID (and never anything this run did not start).

The product's processes run with their own commands (``adx service user server``, ``adx
gateway``, ``adx bff workflow`` ...), configured through ``ADX_*`` settings like in
production; the Temporal dev server is the CLI's, with its in-memory store (the SQLite file
store serialises writes and fails under load: performance-facts.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adx.devstack.ports import distinct_free_ports
from adx.identity import SigningKeys, TokenType
from adx.settings import DEFAULT_PORTS, REPO_ROOT, Environment, Settings
from contracts.context import RequestContext
from services.common.dev_seed import seed_user_id

NAMESPACE = "development"
SEARCH_ATTRIBUTES = ("TenantId", "UserId", "OperationType")
LOG_LEVEL = "WARNING"

# The dev seed's owner of tenant acme: every request of the benchmark acts as her.
ALICE = RequestContext(
    user_id=seed_user_id("alice@acme.test"),
    tenant_id="acme",
    roles=("owner", "admin", "member"),
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if the benchmark dies, its children get SIGTERM."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class StartupError(RuntimeError):
    pass


@dataclass
class Stack:
    workdir: Path
    ports: dict[str, int]
    settings: Settings
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, workdir: Path) -> Stack:
        # Every port of the stack is set, the ones of processes the bench does not run too, so
        # nothing here reaches a default port where a developer's `make dev` may answer.
        names = [*DEFAULT_PORTS, "bff_bench", "plain", "redis"]
        pick = distinct_free_ports()
        ports = {name: pick() for name in names}
        data_dir = workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        jwks_url = f"http://127.0.0.1:{ports['plain']}/.well-known/jwks.json"
        settings_ports = {k: v for k, v in ports.items() if k not in ("plain", "redis")}
        settings_ports["bff_bench"] = ports["bff_bench"]
        values: dict[str, str] = {
            "ADX_ENVIRONMENT": Environment.DEV.value,
            "ADX_DATA_DIR": str(data_dir),
            "ADX_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
            "ADX_TEMPORAL_NAMESPACE": NAMESPACE,
            "ADX_PORTS": json.dumps(settings_ports),
            "ADX_LOG_LEVEL": LOG_LEVEL,
            "ADX_JWKS_URL": jwks_url,
            "ADX_GATEWAY_RATE_LIMIT_USER": "100000000/minute",
            "ADX_GATEWAY_RATE_LIMIT_TENANT": "100000000/minute",
            "ADX_ACCESS_TOKEN_TTL_SECONDS": "7200",
            # The stack has no auth service (a plain JWKS server): its tokens have no session.
            "ADX_SESSION_CHECK": "false",
        }
        # Nothing from the caller's ADX_* environment leaks in: the run is reproducible.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADX_")}
        env.update(values)
        env["PYTHONUNBUFFERED"] = "1"
        settings = Settings(
            _env_file=None,
            environment=Environment.DEV,
            data_dir=data_dir,
            temporal_address=values["ADX_TEMPORAL_ADDRESS"],
            temporal_namespace=NAMESPACE,
            ports=settings_ports,
            log_level=LOG_LEVEL,
            jwks_url=jwks_url,
            access_token_ttl_seconds=7200,
        )
        (workdir / "logs").mkdir(exist_ok=True)
        return cls(workdir=workdir, ports=ports, settings=settings, env=env)

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"

    # Processes ----------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        url: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Proc:
        log_path = self.workdir / "logs" / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env={**self.env, **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the benchmark, which stops them in order
            preexec_fn=_die_with_parent,  # runs before exec; the benchmark has no threads yet
        )
        log.close()
        proc = Proc(name, popen, log_path, url)
        self.procs[name] = proc
        return proc

    def adx(self, name: str, *args: str, url: str | None = None) -> Proc:
        return self.spawn(name, [sys.executable, "-m", "adx", *args], url=url)

    def bench_proc(
        self, name: str, role: str, port: int = 0, *, extra_env: Mapping[str, str] | None = None
    ) -> Proc:
        url = f"http://127.0.0.1:{port}" if port else None
        argv = [sys.executable, "-m", "bench.procs", role, str(port)]
        return self.spawn(name, argv, url=url, extra_env=extra_env)

    def temporal(self) -> Proc:
        argv = [
            str(self.settings.temporal_cli()),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.ports["temporal"]),
            "--namespace",
            NAMESPACE,
            "--log-level",
            "error",
        ]
        for name in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{name}=Keyword"]
        return self.spawn("temporal", argv)

    def redis(self) -> Proc | None:
        binary = shutil.which("redis-server")
        if binary is None:
            self.notes.append("redis-server not installed: the Redis cache variant is skipped")
            return None
        argv = [binary, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        return self.spawn("redis", argv)

    @property
    def redis_url(self) -> str | None:
        return f"redis://127.0.0.1:{self.ports['redis']}/0" if "redis" in self.procs else None

    def pids(self, names: Sequence[str] | None = None) -> dict[str, int]:
        chosen = names if names is not None else list(self.procs)
        return {n: self.procs[n].pid for n in chosen if n in self.procs and self.procs[n].alive}

    def stop(self) -> None:
        """SIGTERM to every process this run started (newest first), SIGKILL to any that
        is still there after 10 s."""
        for proc in reversed(self.procs.values()):
            if proc.alive:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(timeout=5)

    # Readiness ----------------------------------------------------------------------------

    async def wait_port(self, proc: Proc, port: int, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self._check_alive(proc)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
        raise StartupError(f"{proc.name}: nothing listens on port {port} after {within:.0f} s")

    async def wait_http(self, proc: Proc, path: str = "/healthz", within: float = 90) -> None:
        from bench.client import HttpConnection

        assert proc.url is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self._check_alive(proc)
            connection = HttpConnection(proc.url)
            try:
                reply = await connection.request("GET", path)
                if reply.status == 200:
                    return
            except OSError:
                pass
            finally:
                await connection.close()
            await asyncio.sleep(0.2)
        raise StartupError(f"{proc.name}: {proc.url}{path} not healthy after {within:.0f} s")

    def _check_alive(self, proc: Proc) -> None:
        if not proc.alive:
            raise StartupError(
                f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}"
            )

    # Tokens -------------------------------------------------------------------------------

    def token(self, who: RequestContext = ALICE) -> str:
        token, _ = SigningKeys.from_settings(self.settings).issue(
            self.settings,
            user_id=who.user_id,
            tenant_id=who.tenant_id,
            session_id="bench",
            token_type=TokenType.ACCESS,
            roles=list(who.roles),
        )
        return token
