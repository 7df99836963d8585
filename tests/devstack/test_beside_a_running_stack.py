"""`make test` beside `make dev`: the tests that start stacks of their own (launcher, gateway,
router and the SDK through it) pass while a second stack of the project holds the default
ports, as when a developer runs both in two terminals."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adx.settings import DEFAULT_PORTS, REPO_ROOT
from tests.support.devstack import port_is_free, read_log, running_dev_stack

THIS_FILE = Path(__file__).relative_to(REPO_ROOT)
SUITE = ("tests/devstack", "tests/gateway", "tests/router")

pytestmark = pytest.mark.timeout(1200)


def failures(output: str) -> str:
    """The run's summary and the start of its first failure (its tail is mostly logs)."""
    head, _, rest = output.partition("= FAILURES =")
    summary = output[output.rfind("short test summary info") :]
    return f"{rest[:12000] or head[-6000:]}\n...\n{summary}"


@asynccontextmanager
async def default_ports_held(data_dir: Path) -> AsyncIterator[str]:
    """Every default port held by a stack of the project: a new ``adx dev`` on them, or the
    one a developer already runs there (then this test runs exactly beside it)."""
    # A stack still starting or stopping holds some ports only: wait until it has settled.
    for _ in range(120):
        free = [port_is_free(port) for port in DEFAULT_PORTS.values()]
        if all(free) or not any(free):
            break
        await asyncio.sleep(0.5)
    if all(port_is_free(port) for port in DEFAULT_PORTS.values()):
        async with running_dev_stack(data_dir, port_offset=0):
            yield "started here"
            assert_all_held()
    else:
        yield "already running"
        assert_all_held()


def assert_all_held() -> None:
    """Held for the whole run, not only at its start (checked before a stack started here
    is stopped)."""
    free = [name for name, port in DEFAULT_PORTS.items() if port_is_free(port)]
    assert not free, f"default ports freed during the run: {free}"


async def test_the_stacks_tests_pass_beside_a_stack_on_the_default_ports(tmp_path: Path) -> None:
    log = tmp_path / "suite.log"
    async with default_ports_held(tmp_path) as how:
        assert not any(port_is_free(port) for port in DEFAULT_PORTS.values()), how
        # Nothing of this run's ADX_* environment: the suite's own fixtures choose every port.
        env = {key: value for key, value in os.environ.items() if not key.startswith("ADX_")}
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *SUITE,
                f"--ignore={THIS_FILE}",
                # What only checks behaviour on ports of its own ran in the main session.
                "-m",
                "not behaviour",
                cwd=REPO_ROOT,
                env=env,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
            )
        code = await process.wait()
    output = read_log(log)
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert code == 0, f"the suite beside a stack ({how}) failed:\n{failures(output)}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) > 50, summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
