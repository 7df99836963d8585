"""A bounded schemathesis run against the gateway's own OpenAPI document: no input it can
generate makes the gateway answer with a 5xx."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from tests.gateway.conftest import ALICE, Stack

# The routes this stack can serve quickly: the operations endpoints and the start of the
# user service's read workflows (the stack runs no tenant/file/workflow workers, and the SSE
# stream stays open by design: test_stream.py covers it).
FUZZED = (
    r"^/api/workflows(/get_user_profile|/get_recent_activity"
    r"|/\{id\}/(status|result|cancel|retry))?$|^/healthz$|^/openapi.json$"
)


async def test_schemathesis_finds_no_server_error(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{stack.gateway}/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    process = await asyncio.create_subprocess_exec(
        str(schemathesis),
        "run",
        f"{stack.gateway}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "10",
        "--seed",
        "20261122",
        "--request-timeout",
        "20",
        "--phases",
        "examples,coverage,fuzzing",
        "--header",
        f"Authorization: {stack.headers(ALICE)['Authorization']}",
        "--include-path-regex",
        FUZZED,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=200)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(
            "schemathesis did not finish: " + output.decode(errors="replace")[-4000:]
        ) from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    assert "passed" in text
    assert "ST101" not in text  # the server-error check never fired
