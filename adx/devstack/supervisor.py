"""Runs the selected processes: starts them in order, streams their output, restarts the ones
that die, and stops them all (SIGTERM to each process group in reverse order, then SIGKILL).

Each child gets its own session (``start_new_session=True``): Ctrl-C in the terminal reaches
only the launcher, which then stops the children in a controlled order, and a child's own
subprocesses can be signalled together through its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence

from adx.devstack.backoff import Backoff
from adx.devstack.console import Console
from adx.devstack.readiness import Prober
from adx.devstack.spec import ProcessSpec
from adx.logging import get_logger

TAIL_LINES = 40
STOP_TIMEOUT_SECONDS = 10.0
# Lines longer than this are dropped (with a marker) instead of stalling the pipe.
STREAM_LIMIT_BYTES = 1024 * 1024
READINESS_POLL_SECONDS = 0.2
EXIT_POLL_SECONDS = 0.1
# After a child exits, how long its pipes may stay open (held by a grandchild) before we stop
# reading them.
DRAIN_TIMEOUT_SECONDS = 2.0
AFTER_READY_TIMEOUT_SECONDS = 60.0
EXIT_OK = 0
EXIT_FAILED = 1

log = get_logger(__name__)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "could not be started"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _die_with_launcher() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the launcher dies, even by
    SIGKILL, so a killed launcher leaves no server holding the ports. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    launcher_pid = os.getpid()

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != launcher_pid:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The child's exit status as soon as it has exited. ``process.wait()`` (Python 3.11) only
    returns once its pipes are closed too, which a leftover grandchild can delay forever."""
    while process.returncode is None:
        await asyncio.sleep(EXIT_POLL_SECONDS)
    return process.returncode


async def _finish(process: asyncio.subprocess.Process) -> None:
    """After the child exited: kill whatever is left in its group (it would hold the child's
    ports and pipes), then let asyncio close the pipes."""
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), DRAIN_TIMEOUT_SECONDS)


class StartupFailed(Exception):
    """A process that others depend on did not get ready; the message says which and why."""


class ManagedProcess:
    """One supervised child across its restarts."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.process: asyncio.subprocess.Process | None = None
        # The current run's last lines, shown when it crashes or does not get ready.
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.ready = asyncio.Event()
        self.ever_ready = False
        # Set at the first unexpected exit: the start-up table need not wait for this one.
        self.crashed_once = asyncio.Event()
        # Set when a ready_before_next process dies before it was ever ready (start-up fails).
        self.gave_up = asyncio.Event()
        self.starts = 0
        self.started_at = 0.0
        self.keeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        console: Console,
        *,
        backoff: Callable[[], Backoff] = Backoff,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.specs = list(specs)
        self.console = console
        self.processes: list[ManagedProcess] = []
        self._new_backoff = backoff
        self._stop_timeout = stop_timeout
        self._stop_requested = asyncio.Event()
        self._stopping = asyncio.Event()
        self._killing = False
        self._starting_up = True
        self._prober = Prober()

    # Control ----------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        """First call: graceful stop. A second call (Ctrl-C again): SIGKILL everything now."""
        if self._stop_requested.is_set():
            log.warning("stop requested again: killing every child now")
            self._killing = True
            for managed in self.processes:
                if managed.running and managed.pid is not None:
                    _signal_group(managed.pid, signal.SIGKILL)
            return
        name = signal.Signals(signum).name if signum is not None else "request"
        log.info("stopping the stack; signal again to kill it at once", signal=name)
        self._stop_requested.set()

    async def run(self, on_up: Callable[[Sequence[ManagedProcess]], None]) -> int:
        """Starts everything, calls ``on_up`` once every process is ready (or visibly failing),
        then supervises until :meth:`request_stop`. Returns the launcher's exit code."""
        try:
            await self._start_all()
            if not self._stop_requested.is_set():
                await self._wait_until_up()
            self._starting_up = False
            if not self._stop_requested.is_set():
                on_up(self.processes)
            await self._stop_requested.wait()
            return EXIT_OK
        except StartupFailed as failure:
            self.console.block(f"adx dev: start-up failed: {failure}")
            log.error("start-up failed", reason=str(failure))
            return EXIT_FAILED
        finally:
            await self.stop_all()
            await self._prober.aclose()

    # Start-up ---------------------------------------------------------------------------

    async def _start_all(self) -> None:
        for spec in self.specs:
            if self._stop_requested.is_set():
                return
            managed = ManagedProcess(spec)
            self.processes.append(managed)
            managed.keeper = asyncio.create_task(self._keep(managed), name=f"keep-{spec.name}")
            if spec.ready_before_next:
                await self._wait_first_ready(managed)

    async def _first_of(self, events: Sequence[asyncio.Event], within: float | None) -> None:
        waiters = [asyncio.create_task(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _wait_first_ready(self, managed: ManagedProcess) -> None:
        spec = managed.spec
        await self._first_of(
            [managed.ready, managed.gave_up, self._stop_requested], spec.ready_timeout
        )
        if managed.ready.is_set() or self._stop_requested.is_set():
            return
        if managed.gave_up.is_set():
            raise StartupFailed(
                f"{spec.name} exited before it was ready (see its report above); "
                "the processes after it need it, so nothing else was started"
            )
        check = spec.readiness.describe() if spec.readiness else "no check"
        tail = self._tail_text(managed)
        raise StartupFailed(
            f"{spec.name} was not ready after {spec.ready_timeout:.0f} s ({check}). "
            f"Its last lines:\n{tail}"
        )

    async def _wait_until_up(self) -> None:
        async def wait_one(managed: ManagedProcess) -> None:
            await self._first_of(
                [managed.ready, managed.crashed_once, self._stop_requested],
                managed.spec.ready_timeout,
            )
            if not managed.ready.is_set() and not self._stop_requested.is_set():
                log.warning("process is not ready yet", process=managed.name)

        await asyncio.gather(*(wait_one(m) for m in self.processes))

    # One child's life -------------------------------------------------------------------

    async def _keep(self, managed: ManagedProcess) -> None:
        """Runs the child, and again after each unexpected exit, until the stack stops."""
        backoff = self._new_backoff()
        while not self._stopping.is_set():
            try:
                returncode, uptime = await self._run_once(managed)
            except Exception:
                log.exception("supervising failed", process=managed.name)
                returncode, uptime = None, 0.0
            if self._stopping.is_set():
                return
            managed.crashed_once.set()
            if managed.spec.ready_before_next and self._starting_up and not managed.ever_ready:
                self._report_exit(managed, returncode, uptime, restart_in=None)
                managed.gave_up.set()
                return
            delay = backoff.next_delay(uptime)
            self._report_exit(managed, returncode, uptime, restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, managed: ManagedProcess) -> tuple[int | None, float]:
        """One run of the child: spawn, stream, probe; returns (returncode, seconds up)."""
        spec = managed.spec
        managed.tail.clear()
        try:
            for directory in spec.directories:
                directory.mkdir(parents=True, exist_ok=True)
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **spec.env},
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=_die_with_launcher(),
                limit=STREAM_LIMIT_BYTES,
            )
        except OSError as error:
            managed.tail.append(f"cannot start {spec.argv[0]}: {error}")
            return None, 0.0

        managed.process = process
        managed.started_at = time.monotonic()
        managed.starts += 1
        log.info("started", process=spec.name, pid=process.pid, start=managed.starts)
        assert process.stdout is not None
        assert process.stderr is not None
        readers = [
            asyncio.create_task(self._pump(managed, process.stdout)),
            asyncio.create_task(self._pump(managed, process.stderr)),
        ]
        readiness = asyncio.create_task(self._watch_readiness(managed, process))
        if self._stopping.is_set():  # stop began while we were spawning
            await self._terminate(managed)
        try:
            returncode = await _exited(process)
        finally:
            uptime = time.monotonic() - managed.started_at
            managed.ready.clear()
            readiness.cancel()
            await asyncio.gather(readiness, return_exceptions=True)
            await _finish(process)
            _done, pending = await asyncio.wait(readers, timeout=DRAIN_TIMEOUT_SECONDS)
            for reader in pending:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        return returncode, uptime

    async def _pump(self, managed: ManagedProcess, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than STREAM_LIMIT_BYTES; the reader has skipped it
                raw = b"[adx dev: an overlong output line was dropped]\n"
            if not raw:
                return
            text = raw.decode(errors="replace").rstrip("\r\n")
            managed.tail.append(text)
            # While stopping, servers log expected shutdown noise ("context canceled" errors);
            # it stays in the tail (shown if a child has to be killed) but is not printed.
            if not self._stopping.is_set():
                self.console.line(managed.name, text)

    async def _watch_readiness(
        self, managed: ManagedProcess, process: asyncio.subprocess.Process
    ) -> None:
        spec = managed.spec
        if spec.readiness is not None:
            while not await self._prober.is_ready(spec.readiness):
                if process.returncode is not None:
                    return
                await asyncio.sleep(READINESS_POLL_SECONDS)
        if self._stopping.is_set():  # it is being stopped already: nothing to set up
            return
        if spec.after_ready is not None:
            try:
                await asyncio.wait_for(spec.after_ready(), AFTER_READY_TIMEOUT_SECONDS)
            except Exception as error:
                if self._stopping.is_set():  # failed because the stop took the server away
                    return
                # Still counted as ready: the process serves, only its provisioning is missing.
                self.console.block(f"!!! {spec.name}: setting it up after start failed: {error}")
                log.error("after-ready step failed", process=spec.name, error=str(error))
        seconds = round(time.monotonic() - managed.started_at, 1)
        again = managed.ever_ready
        managed.ever_ready = True
        managed.ready.set()
        if again:
            self.console.block(f"+++ {spec.name} is ready again ({seconds} s after restart)")
        log.info("ready", process=spec.name, pid=process.pid, seconds=seconds, start=managed.starts)

    def _tail_text(self, managed: ManagedProcess) -> str:
        lines = [self.console.prefixed(managed.name, line) for line in managed.tail]
        return "\n".join(lines) or self.console.prefixed(managed.name, "(no output)")

    def _report_exit(
        self,
        managed: ManagedProcess,
        returncode: int | None,
        uptime: float,
        restart_in: float | None,
    ) -> None:
        how = describe_exit(returncode)
        name = managed.name
        bar = "!" * 12
        lines = [
            f"{bar} {name} exited unexpectedly: {how} (pid {managed.pid}, up {uptime:.1f} s)",
            f"{bar} its last {len(managed.tail)} lines:",
            self._tail_text(managed),
        ]
        if restart_in is not None:
            lines.append(f"{bar} restarting {name} in {restart_in:g} s")
        self.console.block("\n".join(lines))
        log.error(
            "process exited unexpectedly",
            process=name,
            pid=managed.pid,
            returncode=returncode,
            exit=how,
            uptime_seconds=round(uptime, 1),
            restart_in_seconds=restart_in,
        )

    # Stop -------------------------------------------------------------------------------

    async def stop_all(self) -> None:
        """Stops every child, last started first; returns when none is left."""
        self._stopping.set()
        self._stop_requested.set()
        for managed in reversed(self.processes):
            await self._terminate(managed)
            if managed.keeper is not None:
                await asyncio.gather(managed.keeper, return_exceptions=True)

    async def _terminate(self, managed: ManagedProcess) -> None:
        process = managed.process
        if process is None or process.returncode is not None:
            return
        started = time.monotonic()
        _signal_group(process.pid, signal.SIGKILL if self._killing else signal.SIGTERM)
        try:
            await asyncio.wait_for(_exited(process), self._stop_timeout)
        except TimeoutError:
            tail = self._tail_text(managed)
            self.console.block(
                f"!!! {managed.name} did not stop within {self._stop_timeout:g} s after SIGTERM; "
                f"killing it. Its last lines:\n{tail}"
            )
            _signal_group(process.pid, signal.SIGKILL)
            await _exited(process)
        await _finish(process)
        log.info(
            "stopped",
            process=managed.name,
            pid=process.pid,
            exit=describe_exit(process.returncode),
            seconds=round(time.monotonic() - started, 1),
        )
