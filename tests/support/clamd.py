"""A real ClamAV daemon (Debian's ``clamav-daemon``) for the tests, in a temp dir.

No signatures can be downloaded here (and ``freshclam`` is never run): the daemon loads a
one-line MD5 signature database made by this helper, which matches the EICAR test file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

# The EICAR anti-virus test file: harmless, and detected by every scanner by design.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "Eicar-Test-Signature"
INSTALL_HINT = (
    "clamd (ClamAV) is not installed: run `apt-get install -y clamav-daemon` "
    "(or `make system-deps`); the file service tests scan with a real clamd"
)


@dataclass(frozen=True)
class ClamdServer:
    socket_path: Path
    # The same daemon over TCP on loopback, as a clamd in a container of its own is reached.
    tcp_port: int
    pid: int
    log_path: Path


def clamd_binary() -> str:
    for candidate in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(INSTALL_HINT)


def _ping(socket_path: Path) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
    ):
        sock.settimeout(1.0)
        sock.connect(str(socket_path))
        sock.sendall(b"zPING\0")
        return sock.recv(16).startswith(b"PONG")
    return False


@contextlib.contextmanager
def run_clamd(
    stream_max_bytes: int = 64 * 1024 * 1024, timeout: float = 60.0
) -> Iterator[ClamdServer]:
    """Starts clamd with an EICAR-only signature database; stops it by its PID."""
    binary = clamd_binary()
    # Unix socket paths are limited to ~107 bytes: keep the directory short.
    workdir = Path(tempfile.mkdtemp(prefix="adx-clamd-", dir="/tmp"))
    database = workdir / "db"
    database.mkdir()
    (database / "adx-test.hdb").write_text(
        f"{hashlib.md5(EICAR, usedforsecurity=False).hexdigest()}:{len(EICAR)}:{EICAR_SIGNATURE}\n"
    )
    socket_path = workdir / "clamd.sock"
    log_path = workdir / "clamd.log"
    limit = f"{stream_max_bytes // (1024 * 1024) + 1}M"
    tcp_port = free_port()
    lines = [
        f"LocalSocket {socket_path}",
        "TCPAddr 127.0.0.1",
        f"TCPSocket {tcp_port}",
        f"DatabaseDirectory {database}",
        "Foreground yes",
        f"LogFile {log_path}",
        f"PidFile {workdir / 'clamd.pid'}",
        f"StreamMaxLength {limit}",
        f"MaxScanSize {limit}",
        f"MaxFileSize {limit}",
        # A file over a limit is reported, not silently passed.
        "AlertExceedsMax yes",
    ]
    if os.geteuid() == 0:
        lines.append("User root")
    config = workdir / "clamd.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [binary, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _ping(socket_path):
            if process.poll() is not None:
                log = log_path.read_text() if log_path.exists() else ""
                raise RuntimeError(f"clamd exited with {process.returncode}:\n{log[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"clamd did not answer within {timeout}s")
            time.sleep(0.1)
        yield ClamdServer(socket_path, tcp_port, pid=process.pid, log_path=log_path)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
