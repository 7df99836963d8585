"""The supervisor with small real child processes: readiness, output, crash reports and
restarts, start-up failures, and a stop that leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from adx.devstack.backoff import Backoff
from adx.devstack.console import Console
from adx.devstack.spec import HttpCheck, ProcessSpec, TcpCheck
from adx.devstack.supervisor import TAIL_LINES, ManagedProcess, Supervisor

WAIT_SECONDS = 15.0


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", textwrap.dedent(code))


def tcp_server(port: int, *, before: str = "") -> tuple[str, ...]:
    return python(
        f"""
        import socket, sys
        {before}
        server = socket.create_server(("127.0.0.1", {port}))
        print("listening on {port}", flush=True)
        print("a line on stderr", file=sys.stderr, flush=True)
        while True:
            server.accept()[0].close()
        """
    )


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def eventually(
    condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Run:
    """A supervisor running in the background of a test, with its console output."""

    def __init__(self, specs: Sequence[ProcessSpec], **kwargs: object) -> None:
        self.output = io.StringIO()
        self.supervisor = Supervisor(specs, Console(name_width=8, stream=self.output), **kwargs)  # type: ignore[arg-type]
        self.up: list[list[tuple[str, bool]]] = []
        self.task: asyncio.Task[int] | None = None

    def _on_up(self, processes: Sequence[ManagedProcess]) -> None:
        self.up.append([(m.name, m.ready.is_set()) for m in processes])

    @property
    def text(self) -> str:
        return self.output.getvalue()

    def start(self) -> None:
        self.task = asyncio.create_task(self.supervisor.run(self._on_up))

    def process(self, name: str) -> ManagedProcess:
        return next(m for m in self.supervisor.processes if m.name == name)

    def starts(self, name: str) -> int:
        found = [m.starts for m in self.supervisor.processes if m.name == name]
        return found[0] if found else 0

    async def stop(self) -> int:
        assert self.task is not None
        self.supervisor.request_stop()
        return await asyncio.wait_for(self.task, WAIT_SECONDS)


@asynccontextmanager
async def running(specs: Sequence[ProcessSpec], **kwargs: object) -> AsyncIterator[Run]:
    run = Run(specs, **kwargs)
    run.start()
    try:
        yield run
    finally:
        assert run.task is not None
        if not run.task.done():
            run.supervisor.request_stop()
            await asyncio.wait_for(asyncio.gather(run.task, return_exceptions=True), 30)
        for managed in run.supervisor.processes:
            if managed.pid is not None and alive(managed.pid):
                os.kill(managed.pid, 9)


async def test_starts_in_order_streams_prefixed_output_and_stops_cleanly(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    gate_port, web_port = free_port(), free_port()
    (tmp_path / "healthz").write_text("ok")
    web_argv = (
        sys.executable, "-m", "http.server", str(web_port),
        "--bind", "127.0.0.1", "--directory", str(tmp_path),
    )  # fmt: skip
    specs = [
        ProcessSpec(
            "gate", tcp_server(gate_port), readiness=TcpCheck("127.0.0.1", gate_port),
            ready_before_next=True,
        ),
        ProcessSpec("web", web_argv, readiness=HttpCheck(f"http://127.0.0.1:{web_port}/healthz")),
    ]  # fmt: skip

    async with running(specs) as run:
        await eventually(lambda: bool(run.up), "the stack to be up")
        gate, web = run.process("gate"), run.process("web")
        pids = [gate.pid, web.pid]

        assert run.up == [[("gate", True), ("web", True)]]
        await eventually(lambda: "gate     | a line on stderr" in run.text, "stderr line")
        assert f"gate     | listening on {gate_port}" in run.text
        # Each child leads its own process group (its own session).
        assert [os.getpgid(pid) for pid in pids if pid] == pids
        assert list(gate.tail)[:1] == [f"listening on {gate_port}"]

        assert await run.stop() == 0

    assert gate.starts == web.starts == 1
    assert not any(alive(pid) for pid in pids if pid)
    assert "exited unexpectedly" not in run.text


async def test_http_readiness_needs_a_2xx_answer(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port()
    argv = (
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    )
    spec = ProcessSpec(
        "web", argv, readiness=HttpCheck(f"http://127.0.0.1:{port}/missing"), ready_timeout=1.5
    )

    async with running([spec]) as run:
        await eventually(lambda: bool(run.up), "the start-up table")
        # The server answers 404 on that path: it is up but not ready.
        assert run.up == [[("web", False)]]
        assert await run.stop() == 0


async def test_crashing_process_is_reported_and_restarted_with_backoff() -> None:
    crasher = ProcessSpec(
        "crasher",
        python(
            """
            import sys
            for i in range(50):
                print(f"line {i}")
            print("ModuleNotFoundError: no codec server yet", flush=True)
            sys.exit(3)
            """
        ),
        readiness=TcpCheck("127.0.0.1", 9),  # never ready
    )
    delays: list[float] = []

    class RecordingBackoff(Backoff):
        def next_delay(self, uptime: float) -> float:
            delays.append(super().next_delay(uptime))
            return delays[-1]

    async with running([crasher], backoff=lambda: RecordingBackoff(0.05, 0.2)) as run:
        await eventually(lambda: len(delays) >= 4 and run.starts("crasher") >= 4, "restarts")
        # The table did not wait for it: it shows it as not ready.
        assert run.up == [[("crasher", False)]]
        assert await run.stop() == 0

    text = run.text
    assert "crasher exited unexpectedly: exit code 3" in text
    assert f"its last {TAIL_LINES} lines:" in text
    # The first report block, from its heading to its restart line.
    report = text.split("crasher exited unexpectedly", 1)[1].split("restarting crasher", 1)[0]
    assert "crasher  | ModuleNotFoundError: no codec server yet" in report
    # Only the last 40 of the 51 lines are repeated in the report.
    assert "crasher  | line 10\n" not in report
    assert "crasher  | line 11\n" in report
    assert report.count("crasher  | ") == TAIL_LINES
    assert "restarting crasher in 0.05 s" in text
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]


def test_backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(initial=1, maximum=30, reset_after=60)

    assert [backoff.next_delay(0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(120) == 1
    assert backoff.next_delay(3) == 2


async def test_gate_that_dies_before_ready_fails_start_up_and_starts_nothing_after_it(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    marker = tmp_path / "second-started"
    specs = [
        ProcessSpec(
            "gate",
            python("import sys; print('bad flag: --nope', flush=True); sys.exit(2)"),
            readiness=TcpCheck("127.0.0.1", free_port()),
            ready_before_next=True,
        ),
        ProcessSpec("second", python(f"open({str(marker)!r}, 'w')")),
    ]

    async with running(specs) as run:
        assert run.task is not None
        code = await asyncio.wait_for(run.task, WAIT_SECONDS)

    assert code == 1
    assert "gate exited unexpectedly: exit code 2" in run.text
    assert "gate     | bad flag: --nope" in run.text
    assert "start-up failed: gate exited before it was ready" in run.text
    assert not marker.exists()
    assert run.up == []


async def test_gate_not_ready_in_time_fails_with_its_last_lines(
    free_port: Callable[[], int],
) -> None:
    port = free_port()
    gate = ProcessSpec(
        "gate",
        python("import time; print('still migrating', flush=True); time.sleep(60)"),
        readiness=TcpCheck("127.0.0.1", port),
        ready_before_next=True,
        ready_timeout=1.0,
    )

    async with running([gate]) as run:
        assert run.task is not None
        code = await asyncio.wait_for(run.task, WAIT_SECONDS)
        pid = run.process("gate").pid

    assert code == 1
    assert f"start-up failed: gate was not ready after 1 s (tcp 127.0.0.1:{port})" in run.text
    assert "gate     | still migrating" in run.text
    assert pid is not None
    assert not alive(pid)


async def test_stop_kills_a_child_ignoring_sigterm_and_its_whole_group() -> None:
    stubborn = ProcessSpec(
        "stubborn",
        python(
            """
            import signal, subprocess, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            helper = subprocess.Popen(["sleep", "60"])
            print(f"helper {helper.pid}", flush=True)
            time.sleep(60)
            """
        ),
    )

    async with running([stubborn], stop_timeout=0.5) as run:
        await eventually(lambda: "helper " in run.text, "the helper pid")
        helper_pid = int(run.text.split("helper ", 1)[1].split()[0])
        pid = run.process("stubborn").pid
        assert alive(helper_pid)

        assert await run.stop() == 0

    assert "stubborn did not stop within 0.5 s after SIGTERM; killing it" in run.text
    assert pid is not None
    assert not alive(pid)
    await eventually(lambda: not alive(helper_pid), "the helper in its group to be gone")


async def test_missing_executable_is_reported_and_retried(tmp_path: Path) -> None:
    spec = ProcessSpec("ghost", (str(tmp_path / "no-such-binary"),))

    async with running([spec], backoff=lambda: Backoff(0.05, 0.1)) as run:
        await eventually(lambda: run.text.count("ghost exited unexpectedly") >= 2, "two reports")
        assert await run.stop() == 0

    assert "ghost exited unexpectedly: could not be started" in run.text
    assert "No such file or directory" in run.text


# A helper that ignores SIGTERM, says so, and ends by itself after 30 s (longer than the
# tests below wait, shorter than a stray process should live if one of them fails).
_PARENT_OF_A_DEAF_HELPER = textwrap.dedent(
    """
    import subprocess, sys, time
    deaf = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('deaf', flush=True); time.sleep(30)"
    )
    helper = subprocess.Popen([sys.executable, "-c", deaf])
    print(f"helper {helper.pid}", flush=True)
    """
)


def _helper_pid(text: str) -> int:
    return int(text.split("helper ", 1)[1].split()[0])


def _kill_if_alive(pid: int | None) -> None:
    if pid is not None and alive(pid):
        os.kill(pid, 9)


async def test_stop_kills_what_a_child_left_in_its_group() -> None:
    """The child obeys SIGTERM, a helper it started does not: the helper must not outlive the
    stack (it would keep ports and the child's pipes)."""
    parent = ProcessSpec("parent", python(_PARENT_OF_A_DEAF_HELPER + "time.sleep(60)\n"))

    helper_pid = None
    try:
        async with running([parent], stop_timeout=5) as run:
            await eventually(lambda: "| deaf" in run.text, "the helper to ignore SIGTERM")
            helper_pid = _helper_pid(run.text)
            assert alive(helper_pid)

            assert await run.stop() == 0

        # The parent's exit was noticed although the helper still held its pipes.
        assert "did not stop within" not in run.text
        await eventually(lambda: not alive(helper_pid), "the helper to be gone", seconds=3)
    finally:
        _kill_if_alive(helper_pid)


async def test_crash_report_does_not_wait_for_what_the_child_left_behind() -> None:
    parent = ProcessSpec(
        "parent", python(_PARENT_OF_A_DEAF_HELPER + "time.sleep(1); sys.exit(4)\n")
    )

    helper_pid = None
    try:
        async with running([parent], backoff=lambda: Backoff(5, 5)) as run:
            await eventually(lambda: "| deaf" in run.text, "the helper to ignore SIGTERM")
            helper_pid = _helper_pid(run.text)
            await eventually(
                lambda: "parent exited unexpectedly: exit code 4" in run.text, "report"
            )
            await eventually(lambda: not alive(helper_pid), "the helper to be gone", seconds=3)
            assert run.starts("parent") == 1  # still in its 5 s backoff
            assert await run.stop() == 0
    finally:
        _kill_if_alive(helper_pid)
