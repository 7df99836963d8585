"""The user service's HTTP API over real HTTP, with its worker running the workflows the API
starts: identity, tenant isolation (404 for other tenants, 403 for members one may not
manage), validation, directory search, preferences and activity."""

from __future__ import annotations

import httpx
import pytest

from adx.settings import Environment, Settings
from contracts.context import RequestContext
from contracts.user import ActivityKind, MembershipStatus
from services.common.email import EmailOutbox, OutgoingEmail
from services.user.service import SERVICE
from services.user.store import UserStore, activity_log, email_outbox, profiles
from tests.services.user.support import (
    ALICE,
    ALICE_IN_ACME,
    ALICE_IN_GLOBEX,
    BOB,
    BOB_IN_GLOBEX,
    add_member,
    bearer,
    member_context,
)
from tests.support.services import RunningService, running_service


async def test_a_bearer_token_is_required(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/user/me")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    forged = await http.get("/api/user/me", headers={"authorization": "Bearer not-a-jwt"})
    assert forged.status_code == 401


async def test_the_dev_seed_is_there_and_me_shows_the_tenant_roles(
    http: httpx.AsyncClient, service_settings: Settings
) -> None:
    me = await http.get("/api/user/me", headers=bearer(service_settings, ALICE_IN_ACME))
    assert me.status_code == 200
    body = me.json()
    assert (body["user_id"], body["email"], body["display_name"]) == (
        ALICE.id,
        "alice@acme.test",
        "Alice Anderson",
    )
    assert (body["tenant_id"], body["roles"]) == ("acme", ["owner", "admin", "member"])
    in_globex = await http.get("/api/user/me", headers=bearer(service_settings, ALICE_IN_GLOBEX))
    assert (in_globex.json()["tenant_id"], in_globex.json()["roles"]) == ("globex", ["member"])


async def test_another_tenants_user_does_not_exist(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")  # acme only
    as_bob = bearer(service_settings, BOB_IN_GLOBEX)
    for response in (
        await http.get(f"/api/user/users/{carol}", headers=as_bob),
        await http.patch(f"/api/user/users/{carol}", headers=as_bob, json={"title": "Spy"}),
        await http.post(f"/api/user/users/{carol}/deactivate", headers=as_bob, json={}),
        await http.post(f"/api/user/users/{carol}/restore", headers=as_bob),
        await http.get("/api/user/users/no-such-user", headers=as_bob),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == "user not found"
    search = await http.get("/api/user/users", params={"search": "carol"}, headers=as_bob)
    assert search.json()["items"] == []
    # Alice is in both tenants: each one sees her, with that tenant's roles.
    seen_from_globex = await http.get(f"/api/user/users/{ALICE.id}", headers=as_bob)
    assert seen_from_globex.json()["roles"] == ["member"]
    profile = await service_store.get_profile(carol)
    assert profile is not None
    assert profile.title is None


async def test_patch_own_profile_runs_the_sync_workflow(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")
    headers = bearer(service_settings, member_context(carol))
    response = await http.patch(
        f"/api/user/users/{carol}",
        headers=headers,
        json={"display_name": "Caroline Jones", "title": "Engineer", "timezone": "Europe/Paris"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["display_name"], body["title"], body["timezone"], body["version"]) == (
        "Caroline Jones",
        "Engineer",
        "Europe/Paris",
        2,
    )
    # The directory projection follows, and the change is in the activity log.
    found = await http.get("/api/user/users", params={"search": "jones"}, headers=headers)
    assert [item["user_id"] for item in found.json()["items"]] == [carol]
    activity = await http.get("/api/user/activity", headers=headers)
    entries = activity.json()["entries"]
    assert [e["kind"] for e in entries] == [ActivityKind.PROFILE_UPDATED.value]
    assert "display_name" in entries[0]["summary"]
    # null clears a clearable field.
    cleared = await http.patch(f"/api/user/users/{carol}", headers=headers, json={"title": None})
    assert cleared.status_code == 200
    assert cleared.json()["title"] is None


async def test_who_may_patch_whom(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")
    dave = await add_member(service_store, "dave")
    as_carol = bearer(service_settings, member_context(carol))
    forbidden = await http.patch(f"/api/user/users/{dave}", headers=as_carol, json={"title": "X"})
    assert forbidden.status_code == 403
    as_admin = bearer(service_settings, ALICE_IN_ACME)
    allowed = await http.patch(f"/api/user/users/{dave}", headers=as_admin, json={"title": "Lead"})
    assert allowed.status_code == 200
    assert allowed.json()["title"] == "Lead"
    dave_profile = await service_store.get_profile(dave)
    assert dave_profile is not None
    assert dave_profile.title == "Lead"
    # Alice is only a member in globex: she may not change Bob's profile there.
    as_member_in_globex = bearer(service_settings, ALICE_IN_GLOBEX)
    response = await http.patch(
        f"/api/user/users/{BOB.id}", headers=as_member_in_globex, json={"title": "X"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "new@example.test"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"locale": "english please"}, "locale"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({}, "body"),
    ],
)
async def test_invalid_profile_changes_are_rejected_and_change_nothing(
    http: httpx.AsyncClient,
    service_settings: Settings,
    service_store: UserStore,
    body: dict[str, object],
    field: str,
) -> None:
    carol = await add_member(service_store, "carol")
    response = await http.patch(
        f"/api/user/users/{carol}",
        headers=bearer(service_settings, member_context(carol)),
        json=body,
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:adx:problem:ValidationError"
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    profile = await service_store.get_profile(carol)
    assert profile is not None
    assert profile.version == 1
    assert await service_store.count(activity_log) == 0


async def test_directory_search_pages_through_the_tenant(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    for index in range(5):
        await add_member(service_store, f"member{index}", display_name=f"Member {index}")
    await add_member(service_store, "outsider", {"globex": ("member",)}, display_name="Member X")
    headers = bearer(service_settings, member_context(ALICE.id))
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params = {"search": "MEM", "first": "2", **({"after": after} if after else {})}
        response = await http.get("/api/user/users", params=params, headers=headers)
        assert response.status_code == 200
        page = response.json()
        seen.extend(item["display_name"] for item in page["items"])
        pages += 1
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == [f"Member {index}" for index in range(5)]
    assert pages == 3
    everyone = await http.get("/api/user/users", headers=headers)
    assert {item["email"] for item in everyone.json()["items"]} >= {"alice@acme.test"}
    assert "Member X" not in {item["display_name"] for item in everyone.json()["items"]}

    bad_cursor = await http.get("/api/user/users", params={"after": "%%%"}, headers=headers)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"] == [{"field": "after", "message": "invalid cursor"}]
    too_many = await http.get("/api/user/users", params={"first": "1000"}, headers=headers)
    assert too_many.status_code == 422


async def test_preferences_per_user_per_tenant(
    http: httpx.AsyncClient, service_settings: Settings
) -> None:
    in_acme = bearer(service_settings, ALICE_IN_ACME)
    in_globex = bearer(service_settings, ALICE_IN_GLOBEX)
    default = await http.get("/api/user/preferences", headers=in_acme)
    assert default.status_code == 200
    assert default.json()["theme"] == "system"

    document = {
        "theme": "dark",
        "language": "fr-FR",
        "notifications": {"email": False, "in_app": True, "digest": "daily"},
        "dashboard_widgets": ["files", "activity"],
    }
    saved = await http.put("/api/user/preferences", headers=in_acme, json=document)
    assert saved.status_code == 200
    assert saved.json() == document
    assert (await http.get("/api/user/preferences", headers=in_acme)).json() == document
    assert (await http.get("/api/user/preferences", headers=in_globex)).json()["theme"] == "system"

    invalid = await http.put(
        "/api/user/preferences",
        headers=in_acme,
        json={**document, "theme": "neon", "notifications": {"digest": "hourly"}},
    )
    assert invalid.status_code == 422
    fields = {error["field"] for error in invalid.json()["errors"]}
    assert fields == {"theme", "notifications.digest"}
    assert (await http.get("/api/user/preferences", headers=in_acme)).json() == document

    activity = await http.get("/api/user/activity", params={"limit": "5"}, headers=in_acme)
    assert [e["kind"] for e in activity.json()["entries"]] == ["preferences.updated"]
    assert (await http.get("/api/user/activity", headers=in_globex)).json()["entries"] == []
    assert (await http.get("/api/user/activity?limit=0", headers=in_acme)).status_code == 422


async def test_operation_endpoints_check_roles_and_input(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")
    dave = await add_member(service_store, "dave")
    as_carol = bearer(service_settings, member_context(carol))
    as_admin = bearer(service_settings, ALICE_IN_ACME)

    assert (
        await http.post(f"/api/user/users/{dave}/deactivate", headers=as_carol)
    ).status_code == 403
    assert (await http.post(f"/api/user/users/{dave}/restore", headers=as_carol)).status_code == 403
    bulk = {"action": "suspend", "user_ids": [dave]}
    assert (await http.post("/api/user/bulk", headers=as_carol, json=bulk)).status_code == 403

    own = await http.post(f"/api/user/users/{ALICE.id}/deactivate", headers=as_admin)
    assert own.status_code == 409
    not_deactivated = await http.post(f"/api/user/users/{dave}/restore", headers=as_admin)
    assert not_deactivated.status_code == 409
    short = await http.post(
        f"/api/user/users/{dave}/deactivate", headers=as_admin, json={"grace_period_seconds": 0}
    )
    assert short.status_code == 422
    no_locale = {"action": "update_locale", "user_ids": [dave]}
    assert (await http.post("/api/user/bulk", headers=as_admin, json=no_locale)).status_code == 422
    empty = {"action": "suspend", "user_ids": []}
    assert (await http.post("/api/user/bulk", headers=as_admin, json=empty)).status_code == 422
    too_many = {"action": "suspend", "user_ids": [f"u{i}" for i in range(1001)]}
    assert (await http.post("/api/user/bulk", headers=as_admin, json=too_many)).status_code == 422
    suspend = {"action": "suspend", "user_ids": [dave]}
    for key in ("", "k" * 201):  # an Idempotency-Key is 1-200 characters
        keyed = await http.post(
            "/api/user/bulk", headers={**as_admin, "Idempotency-Key": key}, json=suspend
        )
        assert keyed.status_code == 422
        assert keyed.json()["errors"] == [
            {"field": "Idempotency-Key", "message": "1 to 200 characters"}
        ]
    # Nothing was started or changed.
    membership = await service_store.membership(dave, "acme")
    assert membership is not None
    assert membership.status is MembershipStatus.ACTIVE
    assert await service_store.count(profiles, status="deactivated") == 0


async def test_a_demoted_admin_is_no_admin_before_its_token_expires(
    http: httpx.AsyncClient, service_settings: Settings, service_store: UserStore
) -> None:
    """The token still says admin; the membership as stored now says member: refused."""
    eve = await add_member(service_store, "eve")  # a member in acme, as stored
    dave = await add_member(service_store, "dave")
    stale = bearer(
        service_settings, RequestContext(user_id=eve, tenant_id="acme", roles=("admin", "member"))
    )
    deactivate = await http.post(f"/api/user/users/{dave}/deactivate", headers=stale, json={})
    assert deactivate.status_code == 403
    bulk = {"action": "suspend", "user_ids": [dave]}
    assert (await http.post("/api/user/bulk", headers=stale, json=bulk)).status_code == 403
    rename = await http.patch(
        f"/api/user/users/{dave}", headers=stale, json={"display_name": "Renamed"}
    )
    assert rename.status_code == 403
    profile = await service_store.get_profile(dave)
    assert profile is not None
    assert profile.display_name == "Dave"
    membership = await service_store.membership(dave, "acme")
    assert membership is not None
    assert membership.status is MembershipStatus.ACTIVE


async def test_dev_outbox_exists_in_dev_only(
    http: httpx.AsyncClient, service_settings: Settings
) -> None:
    assert (await http.get("/dev/outbox")).status_code == 404
    dev_settings = service_settings.model_copy(
        update={"environment": Environment.DEV, "smtp_host": None}
    )
    async with (
        running_service(SERVICE, dev_settings, worker=False) as dev,
        httpx.AsyncClient(base_url=dev.url) as client,
    ):
        assert (await client.get("/dev/outbox")).json() == []
        outbox = EmailOutbox(dev.runtime.db, email_outbox, dev_settings)
        await outbox.deliver(
            OutgoingEmail(idempotency_key="k1", to="carol@example.test", subject="Hi", body="x")
        )
        response = await client.get("/dev/outbox", params={"to": "carol@example.test"})
        other = await client.get("/dev/outbox", params={"to": "dave@example.test"})
    assert response.status_code == 200
    messages = response.json()
    assert [(m["to"], m["subject"], m["sent_at"]) for m in messages] == [
        ("carol@example.test", "Hi", None)
    ]
    assert other.json() == []


async def test_server_mode_answers_health_and_readiness(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": "user"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == ["database", "temporal"]
