"""The frontend contract through the router on the whole development stack (``adx dev``):
login (the user's id and email without a token), switchTenant, onboardUser followed to
COMPLETED with watchOperation, setupMfa's secret shown again through operation(id), and
entities spanning two subgraphs, run by the SDK's stack tests (sdk/test/stack/*.test.ts)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.common.dev_seed import seed_user_id
from tests.router.conftest import SDK_DIR, run_node_tests
from tests.support.devstack import DevStack

LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password, tenantId: "acme") { sessionId user { id email } } }"""

STACK_SOURCES = sorted((SDK_DIR / "test" / "stack").glob("*.test.ts"))


@pytest.mark.parametrize(
    "source", STACK_SOURCES, ids=[p.name.removesuffix(".test.ts") for p in STACK_SOURCES]
)
async def test_sdk_on_the_dev_stack(source: Path, dev_stack: DevStack, sdk_tests: Path) -> None:
    await run_node_tests(
        sdk_tests / "stack" / source.name.replace(".ts", ".js"),
        {"ADX_ROUTER_URL": dev_stack.router_url},
        dev_stack.log,
    )


async def test_login_answers_the_users_id_and_email_without_a_token(dev_stack: DevStack) -> None:
    """``User`` belongs to the user subgraph, which needs the caller's token; a login has none
    yet, so the router must take the user's id and email from the auth subgraph alone."""
    query = {
        "query": LOGIN,
        "variables": {"email": "alice@acme.test", "password": "dev-password-123"},
    }
    async with httpx.AsyncClient(timeout=30) as http:
        answer = (await http.post(dev_stack.router_url, json=query)).json()
    assert "errors" not in answer, answer
    login = answer["data"]["login"]
    assert login["sessionId"]
    assert login["user"] == {"id": seed_user_id("alice@acme.test"), "email": "alice@acme.test"}
