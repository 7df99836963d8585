"""The user store on SQLite and PostgreSQL: migrations, idempotent writes, tenant filters,
directory search and the exactly-once bulk items."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect, select

from adx.settings import Settings
from contracts.errors import ErrorKind
from contracts.user import (
    ActivityEntry,
    ActivityKind,
    BulkAction,
    BulkItemInput,
    MembershipStatus,
    ProfileChanges,
    UserProfile,
    UserStatus,
)
from services.common.before import OperationUndone
from services.common.errors import ServiceError
from services.user.service import _seed
from services.user.store import (
    UserStore,
    activity_log,
    bulk_items,
    memberships,
    metadata,
    profiles,
)
from tests.services.user.support import ALICE, BOB, add_member
from tests.support.operations import compensation, forward


def _entry(entry_id: str, tenant: str, user: str, at: datetime) -> ActivityEntry:
    return ActivityEntry(
        id=entry_id,
        tenant_id=tenant,
        user_id=user,
        actor_id=user,
        kind=ActivityKind.PROFILE_UPDATED,
        summary=f"entry {entry_id}",
        at=at,
    )


async def test_migration_creates_exactly_the_tables_of_the_store(store: UserStore) -> None:
    def describe(connection: object) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table.startswith("user_")
        }

    async with store.db.engine.connect() as conn:
        found = await conn.run_sync(describe)
    expected = {table.name: {c.name for c in table.columns} for table in metadata.sorted_tables}
    assert found == expected


async def test_seed_is_idempotent_and_changes_nothing_existing(store: UserStore) -> None:
    for user in (ALICE, BOB):
        for tenant_id, roles in user.memberships.items():
            await store.seed_member(user.id, user.email, user.display_name, tenant_id, list(roles))
    await store.update_profile(
        ALICE.id,
        ProfileChanges(display_name="Alice A.").apply_to((await _get(store, ALICE.id)).values()),
        expected_version=1,
        operation_id="op-1",
    )
    for user in (ALICE, BOB):
        for tenant_id, roles in user.memberships.items():
            await store.seed_member(user.id, user.email, user.display_name, tenant_id, list(roles))
    assert await store.count(profiles) == 2
    assert await store.count(memberships) == 3
    assert (await _get(store, ALICE.id)).display_name == "Alice A."
    alice_acme = await store.membership(ALICE.id, "acme")
    assert alice_acme is not None
    assert alice_acme.roles == ["owner", "admin", "member"]


async def _get(store: UserStore, user_id: str) -> UserProfile:
    profile = await store.get_profile(user_id)
    assert profile is not None
    return profile


async def test_create_profile_is_idempotent_and_emails_are_unique(store: UserStore) -> None:
    first, created = await store.create_profile("u1", "one@example.test", "One", "en", "UTC")
    again, created_again = await store.create_profile("u1", "one@example.test", "One", "fr", "UTC")
    assert created
    assert not created_again
    assert again == first
    assert again.locale == "en"
    with pytest.raises(ServiceError) as caught:
        await store.create_profile("u2", "one@example.test", "Two", "en", "UTC")
    assert caught.value.kind is ErrorKind.CONFLICT
    assert await store.count(profiles) == 1


async def test_profile_updates_are_versioned_and_a_retry_is_recognised(store: UserStore) -> None:
    await store.seed_member("u1", "one@example.test", "One", "acme", ["member"])
    original = await _get(store, "u1")
    changed = ProfileChanges(display_name="Uno", title="CTO").apply_to(original.values())

    updated = await store.update_profile("u1", changed, expected_version=1, operation_id="op-a")
    retried = await store.update_profile("u1", changed, expected_version=1, operation_id="op-a")
    assert (updated.display_name, updated.title, updated.version) == ("Uno", "CTO", 2)
    assert retried.version == 2

    with pytest.raises(ServiceError) as caught:
        await store.update_profile("u1", changed, expected_version=1, operation_id="op-b")
    assert caught.value.kind is ErrorKind.CONFLICT

    # The compensation of op-a puts the old values back...
    assert await store.restore_profile("u1", original.values(), "op-a")
    restored = await _get(store, "u1")
    assert (restored.display_name, restored.title, restored.version) == ("One", None, 3)
    # ...but never over a later change made by someone else.
    later = ProfileChanges(display_name="Later").apply_to(restored.values())
    await store.update_profile("u1", later, expected_version=3, operation_id="op-c")
    assert not await store.restore_profile("u1", original.values(), "op-a")
    assert (await _get(store, "u1")).display_name == "Later"


async def test_email_change_to_a_taken_email_is_a_conflict(store: UserStore) -> None:
    await store.seed_member("u1", "one@example.test", "One", "acme", ["member"])
    await store.seed_member("u2", "two@example.test", "Two", "acme", ["member"])
    values = ProfileChanges(email="two@example.test").apply_to((await _get(store, "u1")).values())
    with pytest.raises(ServiceError) as caught:
        await store.update_profile("u1", values, expected_version=1, operation_id="op")
    assert caught.value.kind is ErrorKind.CONFLICT
    assert (await _get(store, "u1")).email == "one@example.test"


async def test_deactivation_belongs_to_its_operation(store: UserStore) -> None:
    await store.seed_member("u1", "one@example.test", "One", "acme", ["member"])
    deadline = datetime.now(UTC) + timedelta(days=7)
    assert await store.deactivate_profile("u1", "op-1", deadline)
    assert not await store.deactivate_profile("u1", "op-1", deadline)  # a retry
    with pytest.raises(ServiceError) as caught:
        await store.deactivate_profile("u1", "op-2", deadline)
    assert caught.value.kind is ErrorKind.CONFLICT
    profile = await _get(store, "u1")
    assert profile.status is UserStatus.DEACTIVATED
    assert profile.restore_deadline is not None
    assert abs(profile.restore_deadline - deadline) < timedelta(seconds=1)
    assert await store.deactivation_operation("u1") == "op-1"

    assert not await store.reactivate_profile("u1", "op-2")
    assert await store.reactivate_profile("u1", "op-1")
    assert not await store.reactivate_profile("u1", "op-1")
    profile = await _get(store, "u1")
    assert profile.status is UserStatus.ACTIVE
    assert profile.restore_deadline is None


async def test_memberships_are_restored_only_by_the_operation_that_suspended_them(
    store: UserStore,
) -> None:
    for tenant in ("acme", "globex", "initech"):
        await store.seed_member("u1", "one@example.test", "One", tenant, ["member"])
    # Someone suspended u1 in initech first (e.g. a tenant admin).
    assert await store.suspend_memberships("u1", "admin-op", "initech") == ["initech"]
    assert await store.suspend_memberships("u1", "deactivation", None) == ["acme", "globex"]
    assert await store.suspend_memberships("u1", "deactivation", None) == ["acme", "globex"]

    assert await store.restore_memberships("u1", "deactivation") == ["acme", "globex"]
    assert await store.restore_memberships("u1", "deactivation") == []
    statuses = {m.tenant_id: m.status for m in await store.memberships_of("u1")}
    assert statuses == {
        "acme": MembershipStatus.ACTIVE,
        "globex": MembershipStatus.ACTIVE,
        "initech": MembershipStatus.SUSPENDED,
    }


async def test_upsert_membership_sets_roles_and_keeps_a_suspension(store: UserStore) -> None:
    with pytest.raises(ServiceError):
        await store.upsert_membership("ghost", "acme", ["member"])
    await store.create_profile("u1", "one@example.test", "One", "en", "UTC")
    added = await store.upsert_membership("u1", "acme", ["member"])
    assert (added.status, added.display_name, added.roles) == (
        MembershipStatus.ACTIVE,
        "One",
        ["member"],
    )
    await store.suspend_memberships("u1", "op", "acme")
    changed = await store.upsert_membership("u1", "acme", ["admin", "member"])
    assert changed.roles == ["admin", "member"]
    assert changed.status is MembershipStatus.SUSPENDED
    assert await store.count(memberships) == 1


async def test_directory_search_within_a_tenant(store: UserStore) -> None:
    people = {
        "ann": ("Ann Archer", "acme"),
        "anna": ("anna Zed", "acme"),
        "zack": ("Zack Annex", "acme"),
        "percent": ("100% Real", "acme"),
        "underscore": ("a_b", "acme"),
        "other": ("Annie Other", "globex"),
        "gone": ("Anne Gone", "acme"),
        "off": ("Anneliese Off", "acme"),
    }
    ids = {}
    for key, (name, tenant) in people.items():
        ids[key] = await add_member(store, key, {tenant: ("member",)}, display_name=name)
    await store.suspend_memberships(ids["gone"], "op", "acme")
    await store.deactivate_profile(ids["off"], "op", datetime.now(UTC) + timedelta(days=1))

    async def names(search: str) -> list[str]:
        rows = await store.search_directory("acme", search, first=50, after=None)
        return [m.display_name for m, _p in rows]

    # Display-name prefix, a word of it, case-insensitive; never another tenant, a suspended
    # member or a deactivated user.
    assert await names("ANN") == ["Ann Archer", "anna Zed", "Zack Annex"]
    assert await names("archer") == ["Ann Archer"]
    assert await names("zack-") == ["Zack Annex"]  # email prefix
    # LIKE wildcards in the search are plain characters.
    assert await names("100%") == ["100% Real"]
    assert await names("%") == []
    assert await names("a_") == ["a_b"]
    assert len(await names("")) == 5


async def test_directory_pages_are_stable_with_equal_names(store: UserStore) -> None:
    for index in range(7):
        await add_member(store, f"sam{index}", display_name="Sam Same")
    await add_member(store, "zoe", display_name="Zoe")
    seen: list[str] = []
    after = None
    while True:
        rows = await store.search_directory("acme", "", first=3, after=after)
        page = rows[:3]
        seen.extend(m.user_id for m, _p in page)
        if len(rows) <= 3:
            break
        last = page[-1][0]
        after = (last.display_name.lower(), last.user_id)
    assert len(seen) == 8
    assert len(set(seen)) == 8
    everything = await store.search_directory("acme", "", first=50, after=None)
    assert seen == [m.user_id for m, _p in everything]


async def test_preferences_are_per_user_and_tenant(store: UserStore) -> None:
    now = datetime.now(UTC)
    await store.put_preferences("u1", "acme", {"theme": "dark"}, _entry("e1", "acme", "u1", now))
    await store.put_preferences(
        "u1", "globex", {"theme": "light"}, _entry("e2", "globex", "u1", now)
    )
    await store.put_preferences("u1", "acme", {"theme": "system"}, _entry("e3", "acme", "u1", now))
    assert await store.get_preferences("u1", "acme") == {"theme": "system"}
    assert await store.get_preferences("u1", "globex") == {"theme": "light"}
    assert await store.get_preferences("u2", "acme") is None
    assert await store.count(activity_log, tenant_id="acme", user_id="u1") == 2


async def test_activity_log_is_idempotent_newest_first_and_tenant_filtered(
    store: UserStore,
) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for index in range(5):
        assert await store.record_activity(
            _entry(f"e{index}", "acme", "u1", base + timedelta(minutes=index))
        )
    assert not await store.record_activity(_entry("e4", "acme", "u1", base))
    await store.record_activity(_entry("g1", "globex", "u1", base + timedelta(hours=1)))

    recent = await store.recent_activity("acme", "u1", 3)
    assert [entry.id for entry in recent] == ["e4", "e3", "e2"]
    assert recent[0].at == base + timedelta(minutes=4)
    assert recent[0].at.tzinfo is not None
    assert await store.count(activity_log, tenant_id="acme") == 5


async def test_bulk_items_apply_once_and_failures_leave_nothing(store: UserStore) -> None:
    for user in (ALICE, BOB):
        for tenant_id, roles in user.memberships.items():
            await store.seed_member(user.id, user.email, user.display_name, tenant_id, list(roles))
    carol = await add_member(store, "carol")

    def item(user_id: str, action: BulkAction = BulkAction.SUSPEND) -> BulkItemInput:
        return BulkItemInput(
            operation_id="bulk-1", tenant_id="acme", user_id=user_id, action=action, locale="de"
        )

    first = await store.apply_bulk_item(item(carol), ALICE.id)
    again = await store.apply_bulk_item(item(carol), ALICE.id)
    assert first.changed
    assert again.changed
    membership = await store.membership(carol, "acme")
    assert membership is not None
    assert (membership.status, membership.suspended_by) == (MembershipStatus.SUSPENDED, "bulk-1")
    assert await store.count(activity_log, user_id=carol) == 1
    assert await store.count(bulk_items, operation_id="bulk-1") == 1

    # Not a member of acme (bob is in globex only): nothing is written, not even the claim.
    with pytest.raises(ServiceError) as caught:
        await store.apply_bulk_item(item(BOB.id), ALICE.id)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(ServiceError) as caught:
        await store.apply_bulk_item(item(ALICE.id), ALICE.id)
    assert caught.value.message == "you cannot suspend yourself"
    assert await store.count(bulk_items, operation_id="bulk-1") == 1
    bob_globex = await store.membership(BOB.id, "globex")
    assert bob_globex is not None
    assert bob_globex.status is MembershipStatus.ACTIVE

    # update_locale changes the profile once; an item already in that state is unchanged.
    locale_op = item(carol, BulkAction.UPDATE_LOCALE).model_copy(update={"operation_id": "b2"})
    assert (await store.apply_bulk_item(locale_op, ALICE.id)).changed
    assert (await _get(store, carol)).locale == "de"
    second = locale_op.model_copy(update={"operation_id": "b3"})
    assert not (await store.apply_bulk_item(second, ALICE.id)).changed
    assert await store.count(activity_log, user_id=carol) == 2

    # Restoring a deactivated user's membership is refused.
    await store.deactivate_profile(carol, "deact", datetime.now(UTC) + timedelta(days=1))
    restore = item(carol, BulkAction.RESTORE).model_copy(update={"operation_id": "b4"})
    with pytest.raises(ServiceError) as caught:
        await store.apply_bulk_item(restore, ALICE.id)
    assert caught.value.message == "the user is deactivated"


async def test_concurrent_bulk_items_all_apply_exactly_once(store: UserStore) -> None:
    users = [await add_member(store, f"user{index}") for index in range(30)]
    items = [
        BulkItemInput(operation_id="bulk", tenant_id="acme", user_id=u, action=BulkAction.SUSPEND)
        for u in users
    ]
    # Every item twice at once: the duplicates must find the first one's outcome.
    results = await asyncio.gather(*(store.apply_bulk_item(i, "admin") for i in items * 2))
    assert all(result.changed for result in results)
    assert await store.count(bulk_items, operation_id="bulk") == 30
    assert await store.count(activity_log, kind=ActivityKind.MEMBERSHIP_SUSPENDED.value) == 30
    async with store.db.transaction() as session:
        statuses = (
            await session.execute(
                select(memberships.c.status).where(memberships.c.tenant_id == "acme")
            )
        ).scalars()
        assert set(statuses) == {MembershipStatus.SUSPENDED.value}


async def test_the_service_seed_is_idempotent_even_concurrently(
    store: UserStore, settings: Settings
) -> None:
    runtime = SimpleNamespace(settings=settings, db=store.db)
    await asyncio.gather(_seed(runtime), _seed(runtime))  # type: ignore[arg-type]
    await _seed(runtime)  # type: ignore[arg-type]
    assert await store.count(profiles) == 2
    assert await store.count(memberships) == 3
    alice = await _get(store, ALICE.id)
    assert (alice.email, alice.display_name) == (ALICE.email, ALICE.display_name)
    alice_globex = await store.membership(ALICE.id, "globex")
    assert alice_globex is not None
    assert alice_globex.roles == ["member"]


async def test_a_late_attempt_of_an_undone_membership_makes_nothing(store: UserStore) -> None:
    """The projection of a membership an undone operation made does not come back when one
    of its attempts commits after the compensation (a late attempt that outlived its
    timeout); other operations are not fenced."""
    await store.create_profile("u1", "one@example.test", "One", "en", "UTC")
    await forward("sync-1", lambda: store.upsert_membership("u1", "t-new", ["owner"]))
    assert await compensation("sync-1", lambda: store.remove_membership("u1", "t-new"))
    with pytest.raises(OperationUndone):
        await forward("sync-1", lambda: store.upsert_membership("u1", "t-new", ["owner"]))
    assert await store.membership("u1", "t-new") is None
    # A reset (the membership sync's compensation) fences the same way.
    assert not await compensation("sync-2", lambda: store.reset_membership("u1", "t-2", None))
    with pytest.raises(OperationUndone):
        await forward("sync-2", lambda: store.upsert_membership("u1", "t-2", ["member"]))
    assert await store.membership("u1", "t-2") is None
    await forward("sync-3", lambda: store.upsert_membership("u1", "t-2", ["member"]))
    assert await store.membership("u1", "t-2") is not None
