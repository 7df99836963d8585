"""A hung Temporal (its process stopped, its port still open) answers every call of
WorkflowOperations with TemporalUnavailable (a 503 at the gateway), and readiness with "not
ready", instead of holding the request for as long as it hangs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from adx.readiness import failed_checks
from adx.settings import Settings
from contracts.context import RequestContext
from gateway.app import create_gateway_app
from graph.runtime import load
from tests.support.bff import running_bff
from tests.support.http import serve_app
from tests.support.ports import free_port
from tests.support.temporal import SEARCH_ATTRIBUTES, TEST_NAMESPACE
from tests.workflow_client.flows import WaitInput
from workflow_client.connect import connect, ensure_namespace
from workflow_client.errors import TemporalUnavailable
from workflow_client.operations import WorkflowOperations

CALLER = RequestContext(user_id="alice@acme.test", tenant_id="acme", roles=("member",))
# Far past the 2 s deadline: a call still waiting then is a call without one.
HUNG_FOR = 20


@contextlib.asynccontextmanager
async def own_dev_server(settings: Settings) -> AsyncIterator[tuple[int, str]]:
    """A dev server of this test's own (the session's is shared): its PID and address."""
    port = free_port()
    attributes = [f"--search-attribute={key.name}=Keyword" for key in SEARCH_ATTRIBUTES]
    process = await asyncio.create_subprocess_exec(
        str(settings.temporal_cli()),
        "server",
        "start-dev",
        "--headless",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--namespace={TEST_NAMESPACE}",
        "--log-level=error",
        *attributes,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process.pid, f"127.0.0.1:{port}"
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        await process.wait()


async def test_a_hung_temporal_is_unavailable_in_bounded_time(settings: Settings) -> None:
    async with own_dev_server(settings) as (pid, address):
        client = await connect(settings.model_copy(update={"temporal_address": address}))
        ops = WorkflowOperations(client, task_queues={"demo_wait": "deadline-test"})
        running = await ops.start(CALLER, "demo_wait", WaitInput(seconds=30))
        os.kill(pid, signal.SIGSTOP)
        try:
            for call in (
                ops.start(CALLER, "demo_wait", WaitInput(seconds=30)),
                ops.describe(CALLER, running.id),
                ops.cancel(CALLER, running.id, "hung"),
                ops.list_operations(CALLER),
            ):
                with pytest.raises(TemporalUnavailable):
                    await asyncio.wait_for(call, HUNG_FOR)
            # What every /readyz runs: not ready, rather than waiting.
            probe = {"temporal": lambda: ensure_namespace(client)}
            assert await asyncio.wait_for(failed_checks(probe), HUNG_FOR) == {
                "temporal": "TimeoutError"
            }
        finally:
            os.kill(pid, signal.SIGCONT)
        assert (await ops.describe(CALLER, running.id)).id == running.id
        assert await failed_checks(probe) == {}


async def test_every_readiness_endpoint_answers_503_while_temporal_hangs(
    settings: Settings,
) -> None:
    """The gateway's and a BFF's /readyz (the same readiness as every service's) answer "not
    ready" while Temporal hangs, not when it comes back, and ready again after."""
    async with own_dev_server(settings) as (pid, address):
        pointed = settings.model_copy(update={"temporal_address": address})
        client = await connect(pointed)
        async with (
            serve_app(create_gateway_app(pointed, client=client), lifespan=True) as gateway,
            running_bff(load("workflow"), pointed, client=client) as (bff, _deps),
            httpx.AsyncClient(timeout=HUNG_FOR) as http,
        ):
            endpoints = [f"{gateway}/readyz", f"{bff}/readyz"]
            for url in endpoints:
                assert (await http.get(url)).status_code == 200, url
            os.kill(pid, signal.SIGSTOP)
            try:
                for url in endpoints:
                    answer = await http.get(url)
                    assert answer.status_code == 503, url
                    assert "temporal" in answer.text, url
            finally:
                os.kill(pid, signal.SIGCONT)
            for url in endpoints:
                assert (await http.get(url)).status_code == 200, url
