"""A bounded schemathesis run against the gateway test stack (the user service only): no
input gets a 5xx, and every answer matches the schema documented for its status."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import ALICE, Stack
from tests.support.schemathesis import run_schemathesis

pytestmark = pytest.mark.behaviour

# The routes the gateway test stack can serve quickly: the operations endpoints, the start of
# the user service's read workflows and the user service's own routes (the stack runs no
# tenant/file/workflow workers, and the SSE stream stays open by design: test_stream.py
# covers it).
GATEWAY_STACK_ROUTES = (
    r"^/api/workflows(/get_user_profile|/get_recent_activity"
    r"|/\{id\}/(status|result|cancel|retry))?$|^/api/user/|^/healthz$|^/openapi.json$"
)


async def test_schemathesis_finds_no_server_error(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{stack.gateway}/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    await run_schemathesis(
        stack.gateway,
        stack.headers(ALICE)["Authorization"],
        GATEWAY_STACK_ROUTES,
        limit_seconds=200,
    )
