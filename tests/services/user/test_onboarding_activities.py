"""The user activities of the cross-service workflows (user onboarding, compliance export and
erasure) on SQLite and PostgreSQL, called twice as a retry would: compensations remove only
what their operation created; the export has every row about the user; the erasure leaves no
row with their id, email or name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.user import (
    ActivityEntry,
    ActivityKind,
    CreateProfileInput,
    DeleteProfileInput,
    DiscardPreferencesInput,
    InitPreferencesInput,
    ProfileChanges,
)
from contracts.workflow import UserDataRequest
from services.user.activities import UserActivities
from services.user.store import UserStore, memberships, preferences
from tests.services.user.support import ALICE, ALICE_IN_ACME, BOB_IN_GLOBEX, add_member


@pytest.fixture
def activities(store: UserStore, settings: Settings) -> UserActivities:
    return UserActivities(store, settings)


async def test_onboarding_steps_and_their_compensations(
    activities: UserActivities, store: UserStore
) -> None:
    user_id = str(uuid.uuid4())
    operation = f"user_onboarding-{uuid.uuid4().hex}"
    email = f"olga-{uuid.uuid4().hex[:6]}@example.test"
    create = CreateProfileInput(
        user_id=user_id, email=email, display_name="Olga", operation_id=operation
    )
    init = InitPreferencesInput(
        user_id=user_id, tenant_id="acme", roles=["member"], operation_id=operation, locale="fr"
    )
    with use_context(ALICE_IN_ACME):
        await activities.create_profile(create)
        await activities.create_profile(create)  # a retry
        first = await activities.init_preferences(init)
        again = await activities.init_preferences(init)
        assert first.document == again.document
        assert first.document["locale"] == "fr"
        assert await store.count(memberships, user_id=user_id) == 1
        assert await store.count(preferences, user_id=user_id) == 1

        # Another operation's compensations touch nothing.
        other = DiscardPreferencesInput(user_id=user_id, tenant_id="acme", operation_id="other")
        assert (await activities.discard_preferences(other)).rows == 0
        assert not (
            await activities.delete_profile(DeleteProfileInput(user_id=user_id, operation_id="x"))
        ).deleted
        # The profile stays while a membership shows it.
        assert not (
            await activities.delete_profile(
                DeleteProfileInput(user_id=user_id, operation_id=operation)
            )
        ).deleted

        discard = DiscardPreferencesInput(user_id=user_id, tenant_id="acme", operation_id=operation)
        assert (await activities.discard_preferences(discard)).rows == 2
        assert (await activities.discard_preferences(discard)).rows == 0
        delete = DeleteProfileInput(user_id=user_id, operation_id=operation)
        assert (await activities.delete_profile(delete)).deleted
        assert not (await activities.delete_profile(delete)).deleted
    assert await store.get_profile(user_id) is None


async def test_a_changed_or_foreign_profile_is_never_deleted(
    activities: UserActivities, store: UserStore
) -> None:
    existing = await add_member(store, "kept")  # seeded: created by no operation
    user_id = str(uuid.uuid4())
    with use_context(ALICE_IN_ACME):
        await activities.create_profile(
            CreateProfileInput(
                user_id=user_id,
                email=f"c-{user_id[:6]}@example.test",
                display_name="C",
                operation_id="op-1",
            )
        )
    await store.update_profile(
        user_id,
        ProfileChanges(title="Changed").apply_to((await store.get_profile(user_id)).values()),  # type: ignore[union-attr]
        expected_version=1,
        operation_id="someone-else",
    )
    with use_context(ALICE_IN_ACME):
        for target, operation in ((existing, "op-1"), (user_id, "op-1")):
            deleted = await activities.delete_profile(
                DeleteProfileInput(user_id=target, operation_id=operation)
            )
            assert not deleted.deleted
    assert await store.get_profile(existing) is not None
    assert await store.get_profile(user_id) is not None


async def test_workspace_only_in_the_callers_tenant_by_an_admin(
    activities: UserActivities, store: UserStore
) -> None:
    user_id = await add_member(store, "w")
    init = InitPreferencesInput(user_id=user_id, tenant_id="acme", operation_id="op")
    with use_context(BOB_IN_GLOBEX), pytest.raises(ApplicationError) as isolated:
        await activities.init_preferences(init)
    assert isolated.value.type == ErrorKind.TENANT_ISOLATION.value
    member = RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))
    with use_context(member), pytest.raises(ApplicationError) as denied:
        await activities.init_preferences(init)
    assert denied.value.type == ErrorKind.AUTHORIZATION.value


async def test_export_and_erase_every_row_about_the_user(
    activities: UserActivities, store: UserStore
) -> None:
    user_id = await add_member(store, "erin", {"acme": ("member",)}, display_name="Erin Erased")
    profile = await store.get_profile(user_id)
    assert profile is not None
    now = datetime.now(UTC)
    for entry_id, subject, actor in (("a", user_id, ALICE.id), ("b", ALICE.id, user_id)):
        await store.record_activity(
            ActivityEntry(
                id=entry_id,
                tenant_id="acme",
                user_id=subject,
                actor_id=actor,
                kind=ActivityKind.PROFILE_UPDATED,
                summary="profile updated: title",
                at=now,
            )
        )
    request = UserDataRequest(user_id=user_id, request_id="req")
    with use_context(BOB_IN_GLOBEX), pytest.raises(ApplicationError) as hidden:
        await activities.export_user_data(request)
    assert hidden.value.type == ErrorKind.TENANT_ISOLATION.value

    with use_context(ALICE_IN_ACME):
        exported = await activities.export_user_data(request)
        assert exported.records["user_profiles"][0]["email"] == profile.email
        assert len(exported.records["user_memberships"]) == 1
        assert {row["id"] for row in exported.records["user_activity_log"]} == {"a", "b"}
        # The admin's erasure: what acme holds; the profile is the user's, for other tenants.
        scoped = await activities.erase_user_data(request)
    assert scoped.rows["user_memberships"] == 1
    assert scoped.rows["user_activity_log"] == 2  # one deleted, one anonymised
    assert "user_profiles" not in scoped.rows
    assert await store.get_profile(user_id) is not None
    assert await store.membership(user_id, "acme") is None
    with use_context(RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))):
        erased = await activities.erase_user_data(request)
        repeat = await activities.erase_user_data(request)
    assert erased.rows["user_profiles"] == 1
    assert sum(repeat.rows.values()) == 0
    assert await store.get_profile(user_id) is None
    entries = await store.recent_activity("acme", ALICE.id, 10)
    assert [(e.id, e.actor_id) for e in entries] == [("b", None)]
    # No row anywhere still mentions the user.
    async with store.db.engine.connect() as conn:
        from sqlalchemy import text

        for table in (
            "user_profiles",
            "user_memberships",
            "user_preferences",
            "user_activity_log",
            "user_bulk_items",
            "user_email_outbox",
        ):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            text_rows = repr(rows).lower()
            for needle in (user_id, profile.email, "erin erased"):
                assert needle not in text_rows, table
