"""A worker as a process of its own, the one a crash test kills with SIGKILL and starts again:
``WorkerProcess(argv, env, log)`` (started, killed, stopped; its output in ``log``), the
environment that makes it join a test's stack (:func:`worker_env`), and ``adx service NAME
worker`` on it (:func:`service_worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from adx.settings import Settings

# How long a started process has to print its ready line, and a stopped one to exit before
# it is killed.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker process that joins ``settings``' stack (this process's
    environment without its ``ADX_*`` variables, then ``settings`` and ``extra``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ADX_")}
    env.update(
        {
            "ADX_ENVIRONMENT": settings.environment.value,
            "ADX_TEMPORAL_ADDRESS": settings.effective_temporal_address,
            "ADX_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "ADX_DATA_DIR": str(settings.data_dir),
            "ADX_ENCRYPTION_KEYS": json.dumps(
                {key: value.get_secret_value() for key, value in settings.encryption_keys.items()}
            ),
            "ADX_ENCRYPTION_ACTIVE_KEY_ID": settings.encryption_active_key_id or "",
            "ADX_LOG_LEVEL": "WARNING",
            "ADX_DEV_SEED": "true" if settings.dev_seed else "false",
        }
    )
    if settings.database_url is not None:
        env["ADX_DATABASE_URL"] = settings.database_url
    if settings.smtp_host is not None:
        env["ADX_SMTP_HOST"] = settings.smtp_host
        env["ADX_SMTP_PORT"] = str(settings.smtp_port)
    env.update(extra)
    return env


class WorkerProcess:
    """``argv`` run with ``env`` in ``cwd``, its stdout and stderr appended to ``log``.

    ``ready``: the line the process prints on stdout once it works; :meth:`start` returns when
    it has (and fails if it prints anything else first or exits). ``None``: started as soon
    as it is spawned (what it is asked to do waits in Temporal until it polls).

    ``process`` is the running process, ``None`` before :meth:`start` and after :meth:`kill`
    or :meth:`stop`. As an async context manager: started on entry, stopped on exit."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        *,
        ready: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.ready = ready
        self.cwd = log.parent if cwd is None else cwd
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> asyncio.subprocess.Process:
        assert self.process is None, "already running"
        with self.log.open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=sink if self.ready is None else asyncio.subprocess.PIPE,
                stderr=sink,
            )
        if self.ready is not None:
            try:
                await self._wait_ready(process)
            except BaseException:
                await _end(process, signal.SIGKILL)
                raise
            assert process.stdout is not None
            # Whatever it prints later goes to the log, so a full pipe never stalls it.
            self._drain = asyncio.create_task(self._copy(process.stdout))
        self.process = process
        return process

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT):
            line = await process.stdout.readline()
        if line.decode().strip() != self.ready:
            raise RuntimeError(f"{' '.join(self.argv)} did not start: see {self.log}")

    async def _copy(self, stream: asyncio.StreamReader) -> None:
        with self.log.open("ab") as sink:
            async for line in stream:
                sink.write(line)

    async def kill(self) -> int:
        """SIGKILL, then the exit status (``-signal.SIGKILL`` unless it had ended already)."""
        assert self.process is not None, "not running"
        process, self.process = self.process, None
        status = await _end(process, signal.SIGKILL)
        await self._drained()
        return status

    async def stop(self) -> None:
        """SIGTERM if it still runs (SIGKILL if it does not end then); nothing if not running."""
        process, self.process = self.process, None
        if process is not None:
            await _end(process, signal.SIGTERM)
        await self._drained()

    async def _drained(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drain, STOP_TIMEOUT)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def _end(process: asyncio.subprocess.Process, signum: signal.Signals) -> int:
    """Sends ``signum`` to ``process`` if it still runs and returns its exit status; a process
    that outlives a SIGTERM by STOP_TIMEOUT is killed."""
    if process.returncode is None:
        process.send_signal(signum)
    try:
        return await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        return await process.wait()


def service_worker(name: str, settings: Settings, log: Path, **extra: str) -> WorkerProcess:
    """``adx service NAME worker`` on ``settings``' stack (``extra``: more environment), run in
    ``log``'s folder so that no ``.env`` file of the repository applies."""
    argv = [sys.executable, "-m", "adx", "service", name, "worker"]
    return WorkerProcess(argv, worker_env(settings, **extra), log, cwd=log.parent)
