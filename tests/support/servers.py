"""Real servers for the test suite: Redis and PostgreSQL on free ports, in temp dirs.

Never the machine's default instances (6379, 5432) and never fakes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Re-exported: the suite's one way to get a free port.
from adx.devstack.ports import free_port as free_port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass(frozen=True)
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def run_redis() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not installed: run `make system-deps`")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="adx-redis-") as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
            yield RedisServer(port=port, process=process)
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass(frozen=True)
class PostgresServer:
    port: int
    socket_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


def _postgres_bin(tool: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not installed: run `make system-deps`")
    return candidates[-1]


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root: run the cluster as the postgres user then.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="adx-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, user="postgres")
    data = workdir / "data"
    pg_ctl = _postgres_bin("pg_ctl")
    try:
        subprocess.run(
            _as_postgres(
                [
                    _postgres_bin("initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(workdir / "log"), "-w", "start"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        try:
            yield PostgresServer(port=port, socket_dir=workdir)
        finally:
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                check=False,
                stdout=subprocess.DEVNULL,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server: PostgresServer, name: str) -> str:
    """A fresh database on the test cluster; returns its DSN."""
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-q",
            "-c",
            f'CREATE DATABASE "{name}"',
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return server.dsn(name)
