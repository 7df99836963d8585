"""README's table of who may start each operation is what the gateway does: every catalog
entry is in it with the roles the gateway requires, a member is refused (403) exactly the
operations the table keeps for owners or admins, and an owner is refused none (the body,
deliberately not an object, is then a 422: nothing starts)."""

from __future__ import annotations

import re

import httpx
import pytest

from adx.settings import REPO_ROOT
from contracts.context import RequestContext
from gateway.catalog import CATALOG
from tests.gateway.conftest import ALICE, Stack

pytestmark = pytest.mark.behaviour

WHO = {
    "any member": frozenset(),
    "owner or admin": frozenset({"owner", "admin"}),
    "owner": frozenset({"owner"}),
}
ROW = re.compile(r"^\| `(?P<type>[a-z_]+)` \| (?P<who>[a-z ]+) \|", re.MULTILINE)
MEMBER = RequestContext(user_id=ALICE.user_id, tenant_id="acme", roles=("member",))


def table() -> dict[str, frozenset[str]]:
    section = (
        (REPO_ROOT / "README.md").read_text().split("### Who may do what with an operation")[1]
    )
    return {row["type"]: WHO[row["who"]] for row in ROW.finditer(section.split("\n## ")[0])}


def test_the_table_lists_every_operation_with_the_roles_the_gateway_requires() -> None:
    assert table() == {name: entry.roles for name, entry in CATALOG.items()}


async def test_the_gateway_refuses_whom_the_table_refuses(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    for workflow_type, roles in table().items():
        url = f"{stack.gateway}/api/workflows/{workflow_type}"
        as_member = await http.post(url, json=[], headers=stack.headers(MEMBER))
        assert as_member.status_code == (403 if roles else 422), workflow_type
        as_owner = await http.post(url, json=[], headers=stack.headers(ALICE))
        assert as_owner.status_code == 422, workflow_type
