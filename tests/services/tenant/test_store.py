"""The tenant store on SQLite and PostgreSQL: idempotent writes, compensations that undo only
their own operation's writes, the last-owner rule, the switch audit, billing."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable

import pytest
from temporalio.testing import ActivityEnvironment

from contracts.errors import ErrorKind
from contracts.tenant import (
    InvoiceStatus,
    MembershipChange,
    MemberStatus,
    Plan,
    Quotas,
    TenantStatus,
)
from services.common.before import OperationUndone
from services.common.errors import ServiceError
from services.tenant.billing import PLANS, change_price, terms
from services.tenant.store import (
    TenantStore,
    current_tenants,
    memberships,
    plans,
    quotas,
    roles,
    switches,
)
from tests.support.operations import compensation, forward

QUOTA = Quotas(max_users=5, storage_bytes=100)


async def test_create_tenant_is_idempotent_per_operation(store: TenantStore) -> None:
    tenant, created = await store.create_tenant("acme", "Acme", Plan.FREE, "op-1")
    assert created
    again, created_again = await store.create_tenant("acme", "Acme", Plan.FREE, "op-1")
    assert not created_again
    assert again == tenant
    with pytest.raises(ServiceError) as raised:
        await store.create_tenant("acme", "Other", Plan.FREE, "op-2")
    assert raised.value.kind.value == "ConflictError"
    # Only the creating operation's compensation deletes it.
    assert not await store.delete_tenant("acme", "op-2", "mallory")
    assert await store.delete_tenant("acme", "op-1", "alice")
    assert await store.get_tenant("acme") is None


async def test_a_deleted_tenants_id_goes_to_no_other_user(store: TenantStore) -> None:
    """Whatever another service may still hold under a compensated tenant's id (a grant of
    its maker's) must not pass to whoever takes the id next: only its maker can."""
    await store.create_tenant("t-reused", "First", Plan.FREE, "op-1", "alice")
    assert await store.delete_tenant("t-reused", "op-1", "alice")
    with pytest.raises(ServiceError) as raised:
        await store.create_tenant("t-reused", "Takeover", Plan.FREE, "op-2", "mallory")
    assert raised.value.kind.value == "ConflictError"
    assert await store.get_tenant("t-reused") is None
    # Its maker may take it again (a provisioning tried once more).
    tenant, created = await store.create_tenant("t-reused", "Again", Plan.FREE, "op-3", "alice")
    assert created
    assert tenant.name == "Again"


async def test_roles_quotas_and_members_undo_only_their_operation(store: TenantStore) -> None:
    await store.create_tenant("acme", "Acme", Plan.FREE, None)
    assert sorted(await store.create_default_roles("acme", "op-1")) == [
        "admin",
        "member",
        "owner",
        "viewer",
    ]
    assert await store.create_default_roles("acme", "op-2") == []
    assert await store.delete_roles("acme", "op-2") == 0
    assert await store.delete_roles("acme", "op-1") == 4
    assert await store.set_quotas("acme", QUOTA, "op-1")
    assert not await store.set_quotas("acme", QUOTA, "op-2")
    assert not await store.clear_quotas("acme", "op-2")
    assert await store.clear_quotas("acme", "op-1")
    _member, created = await store.add_member("acme", "u1", ["member"], None, "op-1")
    assert created
    _member, created = await store.add_member("acme", "u1", ["admin"], None, "op-2")
    assert not created
    assert not await store.remove_member("acme", "u1", "op-2")
    assert await store.remove_member("acme", "u1", "op-1")
    assert await store.member("acme", "u1") is None


async def test_nothing_is_made_under_a_tenant_that_is_gone(store: TenantStore) -> None:
    """A provisioning's late attempt (its answer timed out, its step's compensation already
    ran) must not leave a membership, roles or quotas of the tenant it was undoing."""
    for attempt in (
        store.add_member("ghost", "u1", ["owner"], None, "prov-1"),
        store.create_default_roles("ghost", "prov-1"),
        store.set_quotas("ghost", QUOTA, "prov-1"),
        store.change_membership("ghost", "u1", MembershipChange.ADD, ["member"], None, "op"),
    ):
        with pytest.raises(ServiceError) as refused:
            await attempt
        assert refused.value.kind is ErrorKind.NOT_FOUND
    # What committed under a tenant before its deletion goes with it.
    await store.create_tenant("short", "Short", Plan.FREE, "prov-2")
    await store.create_default_roles("short", "prov-2")
    await store.set_quotas("short", QUOTA, "prov-2")
    await store.add_member("short", "u1", ["owner"], None, "prov-2")
    assert await store.delete_tenant("short", "prov-2", "u1")
    assert await store.members("short") == []
    assert await store.roles_of("short") == {}
    assert [row for row in await store.rows(quotas) if row["tenant_id"] == "short"] == []
    for table in (memberships, roles, quotas):
        assert all(row["tenant_id"] != "ghost" for row in await store.rows(table))


async def test_a_retried_add_member_of_one_operation_still_reports_it_created(
    store: TenantStore,
) -> None:
    """An add that committed and lost its answer is run again: it must still say "created",
    or the onboarding's compensation would leave the membership (and the grant) behind."""
    await store.create_tenant("acme", "Acme", Plan.FREE, None)

    async def add() -> bool:
        return (await store.add_member("acme", "u9", ["member"], None, "onboarding-1"))[1]

    first, retried = ActivityEnvironment(), ActivityEnvironment()
    first.info = dataclasses.replace(first.info, workflow_id="onboarding-1")
    retried.info = dataclasses.replace(first.info, attempt=2)
    assert await first.run(add)
    assert await retried.run(add)
    other = ActivityEnvironment()
    other.info = dataclasses.replace(first.info, workflow_id="onboarding-2")
    assert not await other.run(add)


async def test_the_last_owner_cannot_be_demoted_or_removed(store: TenantStore) -> None:
    await store.create_tenant("acme", "Acme", Plan.FREE, None)
    await store.add_member("acme", "owner1", ["owner", "member"], None, None)
    await store.add_member("acme", "u2", ["member"], None, None)
    with pytest.raises(ServiceError) as raised:
        await store.set_member_roles("acme", "owner1", ["member"])
    assert raised.value.kind.value == "ConflictError"
    with pytest.raises(ServiceError):
        await store.remove_member_keeping_owner("acme", "owner1")
    await store.set_member_roles("acme", "u2", ["owner"])
    demoted = await store.set_member_roles("acme", "owner1", ["member"])
    assert demoted.roles == ["member"]
    assert demoted.status is MemberStatus.ACTIVE


async def test_members_and_tenants_stay_in_their_tenant(store: TenantStore) -> None:
    for tenant_id in ("acme", "globex"):
        await store.create_tenant(tenant_id, tenant_id.title(), Plan.FREE, None)
    await store.add_member("acme", "u1", ["member"], None, None)
    await store.add_member("globex", "u2", ["member"], None, None)
    assert [m.user_id for m in await store.members("acme")] == ["u1"]
    assert await store.member("globex", "u1") is None
    assert [t.id for t, _m in await store.tenants_of("u1")] == ["acme"]
    assert await store.member_count("globex") == 1


async def test_switch_audit_and_its_compensation(store: TenantStore) -> None:
    assert await store.set_current_tenant("u1", "acme", "switch-1") is None
    before = await store.rows(current_tenants)
    assert await store.set_current_tenant("u1", "globex", "switch-2") == "acme"
    # A retry of the same switch changes nothing more.
    assert await store.set_current_tenant("u1", "globex", "switch-2") == "acme"
    assert len(await store.rows(switches)) == 2
    assert await store.current_tenant("u1") == "globex"
    assert await store.restore_current_tenant("u1", "switch-2")
    assert not await store.restore_current_tenant("u1", "switch-2")
    assert await store.rows(current_tenants) == before
    assert [row["operation_id"] for row in await store.rows(switches)] == ["switch-1"]
    assert await store.restore_current_tenant("u1", "switch-1")
    assert await store.rows(current_tenants) == []


async def test_invoices_are_one_per_operation_and_refundable(store: TenantStore) -> None:
    await store.sync_plans(list(PLANS.values()))
    await store.sync_plans(list(PLANS.values()))
    assert [row["id"] for row in await store.rows(plans)] == ["enterprise", "free", "professional"]
    await store.create_tenant("acme", "Acme", Plan.FREE, None)
    price = change_price(Plan.FREE, Plan.PROFESSIONAL)
    assert price == terms(Plan.PROFESSIONAL).price_cents
    assert change_price(Plan.ENTERPRISE, Plan.FREE) == 0
    first = await store.create_invoice("acme", "op-1", Plan.PROFESSIONAL, Plan.FREE, price)
    again = await store.create_invoice("acme", "op-1", Plan.PROFESSIONAL, Plan.FREE, price)
    assert again == first
    assert first.status is InvoiceStatus.PENDING
    assert await store.invoice("globex", first.id) is None
    assert await store.set_invoice_status("acme", first.id, InvoiceStatus.PAID)
    assert not await store.set_invoice_status("acme", first.id, InvoiceStatus.PAID)
    # A paid invoice is refunded before it can be deleted.
    assert not await store.delete_invoice("acme", first.id)
    assert await store.set_invoice_status("acme", first.id, InvoiceStatus.PENDING)
    assert await store.delete_invoice("acme", first.id)
    assert await store.invoices_of("acme") == []


async def test_plan_and_status_changes(store: TenantStore) -> None:
    await store.create_tenant("acme", "Acme", Plan.FREE, None)
    await store.set_plan("acme", Plan.ENTERPRISE, terms(Plan.ENTERPRISE).quotas, "op-1")
    tenant = await store.get_tenant("acme")
    assert tenant is not None
    assert tenant.plan is Plan.ENTERPRISE
    assert tenant.quotas == terms(Plan.ENTERPRISE).quotas
    assert await store.plan_operation("acme") == "op-1"
    await store.set_plan("acme", Plan.FREE, None, None)
    tenant = await store.get_tenant("acme")
    assert tenant is not None
    assert tenant.quotas is None
    assert await store.set_status("acme", TenantStatus.SUSPENDED, "op-s")
    assert not await store.set_status("acme", TenantStatus.SUSPENDED, "op-s")
    assert await store.status_operation("acme") == "op-s"


async def test_user_data_export_and_erasure(store: TenantStore) -> None:
    for tenant_id in ("acme", "globex"):
        await store.create_tenant(tenant_id, tenant_id.title(), Plan.FREE, None)
        await store.add_member(tenant_id, "u1", ["member"], None, None)
    await store.set_current_tenant("u1", "globex", "switch-1")
    records = await store.user_records("u1", None)
    assert len(records["memberships"]) == 2
    assert len(records["tenant_switches"]) == 1
    in_acme = await store.user_records("u1", "acme")
    assert [row["tenant_id"] for row in in_acme["memberships"]] == ["acme"]
    assert in_acme["tenant_switches"] == []
    assert await store.erase_user("u1", "acme") == {
        "tenant_memberships": 1,
        "tenant_current": 0,
        "tenant_switches": 0,
    }
    assert await store.erase_user("u1", None) == {
        "tenant_memberships": 1,
        "tenant_current": 1,
        "tenant_switches": 1,
    }
    assert await store.erase_user("u1", None) == {
        "tenant_memberships": 0,
        "tenant_current": 0,
        "tenant_switches": 0,
    }


async def test_seed_is_idempotent(store: TenantStore) -> None:
    for _ in range(2):
        await store.seed("acme", "Acme", Plan.PROFESSIONAL, QUOTA, {"u1": ["owner"]})
    assert len(await store.members("acme")) == 1
    assert len(await store.roles_of("acme")) == 4


async def test_a_late_attempt_of_an_undone_add_member_makes_nothing(store: TenantStore) -> None:
    """An onboarding undone while the tenant stays: a late attempt of its add_member (one
    that outlived its timeout) commits after the compensation removed the member, and must
    not bring the membership back."""
    await store.create_tenant("acme", "Acme", Plan.FREE, None)

    def add() -> Awaitable[object]:
        return store.add_member("acme", "u9", ["member"], None, "onboarding-1")

    await forward("onboarding-1", add)
    assert await compensation(
        "onboarding-1", lambda: store.remove_member("acme", "u9", "onboarding-1")
    )
    with pytest.raises(OperationUndone):
        await forward("onboarding-1", add)
    assert await store.member("acme", "u9") is None
