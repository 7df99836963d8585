"""``GET /api/user/users?ids=a,b,c`` (what the user BFF's DataLoader calls): the requested
users who are active members of the caller's tenant, in one query; everyone else is absent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from adx.settings import Settings
from services.user.store import UserStore
from tests.services.user.support import (
    ALICE,
    ALICE_IN_ACME,
    BOB,
    BOB_IN_GLOBEX,
    add_member,
    bearer,
)


@contextmanager
def counted_statements(store: UserStore) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = store.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_members_by_ids_is_one_query_and_keeps_to_the_tenant(store: UserStore) -> None:
    acme = [await add_member(store, f"m{index}") for index in range(4)]
    outsider = await add_member(store, "outsider", {"globex": ("member",)})
    both = await add_member(store, "both", {"acme": ("admin",), "globex": ("member",)})
    await store.suspend_memberships(acme[3], "test-suspension", "acme")
    wanted = [*acme, outsider, both, "no-such-user", acme[0]]

    with counted_statements(store) as statements:
        found = await store.members_by_ids("acme", wanted)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert [m.user_id for m, _ in found] == sorted([*acme[:3], both])
    roles = {m.user_id: m.roles for m, _ in found}
    assert roles[both] == ["admin"]
    assert all(p.user_id == m.user_id for m, p in found)
    in_globex = await store.members_by_ids("globex", wanted)
    assert {m.user_id for m, _ in in_globex} == {outsider, both}
    assert await store.members_by_ids("acme", []) == []


async def test_batch_endpoint_returns_only_members_of_the_callers_tenant(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")
    dave = await add_member(service_store, "dave", {"acme": ("admin", "member")})
    ids = ",".join([carol, BOB.id, dave, "no-such-user", ALICE.id, carol])

    response = await http.get(
        "/api/user/users", params={"ids": ids}, headers=bearer(service_settings, ALICE_IN_ACME)
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert sorted(item["user_id"] for item in items) == sorted([carol, dave, ALICE.id])
    by_id = {item["user_id"]: item for item in items}
    assert by_id[dave]["roles"] == ["admin", "member"]
    assert by_id[dave]["tenant_id"] == "acme"
    assert by_id[carol]["display_name"] == "Carol"

    # From globex, Alice is a member there (with that tenant's roles); carol and dave are not.
    from_globex = await http.get(
        "/api/user/users", params={"ids": ids}, headers=bearer(service_settings, BOB_IN_GLOBEX)
    )
    found = {item["user_id"]: item["roles"] for item in from_globex.json()["items"]}
    assert found == {BOB.id: ["owner", "admin", "member"], ALICE.id: ["member"]}


async def test_batch_endpoint_validates_the_ids(
    http: httpx.AsyncClient, service_settings: Settings
) -> None:
    headers = bearer(service_settings, ALICE_IN_ACME)
    for ids in ("", " , ", ",".join(f"user-{index}" for index in range(101)), "x" * 65):
        response = await http.get("/api/user/users", params={"ids": ids}, headers=headers)
        assert response.status_code == 422, (ids[:20], response.text)
    unauthenticated = await http.get("/api/user/users", params={"ids": ALICE.id})
    assert unauthenticated.status_code == 401
