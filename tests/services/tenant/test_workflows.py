"""The tenant workflows on the real dev server, with the real auth, user and tenant workers:
success paths, a failure injected at each step in turn, cancellation mid-way. After a
failure or a cancel every store is exactly as it was before (every completed step
compensated)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from contracts.auth import AuthActivity, GrantStatus
from contracts.context import RequestContext, use_context
from contracts.names import SignalName, WorkflowType
from contracts.progress import EventKind
from contracts.tenant import (
    GetTenantDataInput,
    InvoiceStatus,
    Plan,
    ResumeTenantSignal,
    SuspensionOutcome,
    TenantActivity,
    TenantData,
    TenantProvisioningInput,
    TenantProvisioningResult,
    TenantStatus,
    TenantSuspensionInput,
    TenantSuspensionResult,
    TenantSwitchingInput,
    TenantSwitchingResult,
    TenantTask,
    TenantUpgradeInput,
    TenantUpgradeResult,
)
from contracts.user import UserActivity
from services.auth.activities import components
from services.auth.models import SessionRecord
from services.auth.store import AuthStore
from services.common.dev_seed import seed_user_id
from services.tenant.billing import terms
from services.tenant.store import TenantStore, now_utc, switches
from services.user.store import UserStore
from tests.services.tenant.support import (
    ALICE,
    ALICE_IN_ACME,
    BOB,
    OWNER,
    Stack,
    snapshot,
    stand_in,
    unique,
    wait_for_event,
)
from workflow_client.errors import WorkflowFailed


def _owner_in(tenant_id: str, user_id: str = ALICE.id) -> RequestContext:
    return RequestContext(user_id=user_id, tenant_id=tenant_id, roles=OWNER)


async def _session(stack: Stack, user_id: str, tenant_id: str) -> str:
    """A live session of the user in the tenant (as login makes it)."""
    now = now_utc()
    record = SessionRecord(
        id=unique("s")[:36],
        user_id=user_id,
        tenant_id=tenant_id,
        created_at=now,
        expires_at=now.replace(year=now.year + 1),
        refresh_token_hash="x" * 64,
    )
    await components(stack.runtimes["auth"]).sessions.create(record)
    return record.id


async def _owned_tenant(stack: Stack, plan: Plan = Plan.FREE) -> str:
    """A fresh tenant owned by alice (plus carol as member), in every store."""
    tenant_id = unique("t")
    carol = seed_user_id(f"{tenant_id}-carol@example.test")
    tenants = TenantStore(stack.db)
    await tenants.seed(
        tenant_id, tenant_id.title(), plan, terms(plan).quotas, {ALICE.id: list(OWNER)}
    )
    await tenants.add_member(tenant_id, carol, ["member"], ALICE.id, None)
    auth = AuthStore(stack.runtimes["auth"].db)
    now = now_utc()
    await auth.seed_user(carol, f"{tenant_id}-carol@example.test", "x", now)
    await auth.seed_grant(ALICE.id, tenant_id, OWNER, now)
    await auth.seed_grant(carol, tenant_id, ("member",), now)
    return tenant_id


async def _fails(awaitable: Any) -> WorkflowFailed:
    with pytest.raises(WorkflowFailed) as raised:
        await awaitable
    return raised.value


# Provisioning ----------------------------------------------------------------------------

PROVISIONING_STEPS: list[tuple[str, str]] = [
    ("create_tenant", TenantTask.CREATE_TENANT),
    ("create_default_roles", TenantTask.CREATE_DEFAULT_ROLES),
    ("set_quotas", TenantTask.SET_QUOTAS),
    ("add_owner_membership", TenantActivity.ADD_MEMBER),
    ("grant_owner_access", AuthActivity.GRANT_TENANT_ACCESS),
    ("sync_user_projection", UserActivity.UPSERT_MEMBERSHIP),
]


async def test_provisioning_creates_the_tenant_everywhere(stack: Stack) -> None:
    tenant_id = unique("new")
    async with stack.workers():
        outcome = await stack.ops.execute(
            ALICE_IN_ACME,
            WorkflowType.TENANT_PROVISIONING.value,
            TenantProvisioningInput(tenant_id=tenant_id, name="New Co", plan=Plan.PROFESSIONAL),
            budget=timedelta(seconds=30),
            result_type=TenantProvisioningResult,
        )
    result = outcome.result
    assert result is not None
    assert result.tenant.id == tenant_id
    assert result.tenant.quotas == terms(Plan.PROFESSIONAL).quotas
    tenants = TenantStore(stack.db)
    member = await tenants.member(tenant_id, ALICE.id)
    assert member is not None
    assert member.roles == list(OWNER)
    assert sorted(await tenants.roles_of(tenant_id)) == ["admin", "member", "owner", "viewer"]
    grant = await AuthStore(stack.runtimes["auth"].db).get_grant(ALICE.id, tenant_id)
    assert grant is not None
    assert grant.status is GrantStatus.ACTIVE
    assert grant.roles == list(OWNER)
    projection = await UserStore(stack.runtimes["user"].db).membership(ALICE.id, tenant_id)
    assert projection is not None
    assert projection.roles == list(OWNER)


@pytest.mark.parametrize(("step", "activity"), PROVISIONING_STEPS)
async def test_provisioning_failing_at_each_step_changes_nothing(
    stack: Stack, step: str, activity: str
) -> None:
    tenant_id = unique("fail")
    before = await snapshot(stack.db)
    async with stack.workers({activity: stand_in(stack, activity)}):
        failure = await _fails(
            stack.ops.execute(
                ALICE_IN_ACME,
                WorkflowType.TENANT_PROVISIONING.value,
                TenantProvisioningInput(tenant_id=tenant_id, name="Failing Co"),
                budget=timedelta(seconds=30),
                result_type=TenantProvisioningResult,
            )
        )
    assert failure.message == "injected failure"
    done = [name for name, _ in PROVISIONING_STEPS[: PROVISIONING_STEPS.index((step, activity))]]
    # Every completed step compensated, newest first.
    assert failure.compensations == list(reversed(done))
    assert await snapshot(stack.db) == before


async def test_provisioning_cancelled_mid_way_changes_nothing(stack: Stack) -> None:
    """The cancel arrives while the grant is being made: the grant is awaited, then undone
    with the rest (tests/faults covers every step and point)."""
    tenant_id = unique("cancel")
    before = await snapshot(stack.db)
    slow = stand_in(stack, AuthActivity.GRANT_TENANT_ACCESS, fail=False, delay=2)
    async with stack.workers({AuthActivity.GRANT_TENANT_ACCESS: slow}):
        operation = await stack.ops.start(
            ALICE_IN_ACME,
            WorkflowType.TENANT_PROVISIONING.value,
            TenantProvisioningInput(tenant_id=tenant_id, name="Cancelled Co"),
        )
        await wait_for_event(
            stack.ops,
            ALICE_IN_ACME,
            operation.id,
            lambda e: e.kind is EventKind.STEP_STARTED and e.step == "grant_owner_access",
        )
        assert await TenantStore(stack.db).get_tenant(tenant_id) is not None
        await stack.ops.cancel(ALICE_IN_ACME, operation.id, "test")
        handle = stack.ops.client.get_workflow_handle(operation.id)
        with pytest.raises(WorkflowFailureError) as raised:
            await handle.result()
        assert isinstance(raised.value.cause, CancelledError)
        events = (await stack.ops.progress(ALICE_IN_ACME, operation.id)).report.events
    compensated = [e.step for e in events if e.kind is EventKind.COMPENSATION_COMPLETED]
    assert compensated == [
        "grant_owner_access",
        "add_owner_membership",
        "set_quotas",
        "create_default_roles",
        "create_tenant",
    ]
    assert await snapshot(stack.db) == before


# Switching -------------------------------------------------------------------------------


def _has_session(arg: dict[str, Any]) -> bool:
    return arg.get("session_id") is not None


def _has_tenant(arg: dict[str, Any]) -> bool:
    return arg.get("tenant_id") is not None


SWITCHING_STEPS: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = [
    ("validate_access", TenantTask.CHECK_SWITCH_ACCESS, lambda _arg: True),
    ("validate_access", AuthActivity.VALIDATE_CREDENTIALS, _has_tenant),
    ("capture_session", AuthActivity.VALIDATE_CREDENTIALS, _has_session),
    ("update_current_tenant", TenantTask.SET_CURRENT_TENANT, lambda _arg: True),
    ("create_session", AuthActivity.CREATE_SESSION, lambda _arg: True),
    ("load_tenant_data", TenantTask.LOAD_TENANT_DATA, lambda _arg: True),
    ("invalidate_old_session", AuthActivity.INVALIDATE_SESSION, lambda _arg: True),
]
SWITCH_ORDER = [
    "validate_access",
    "capture_session",
    "update_current_tenant",
    "create_session",
    "load_tenant_data",
    "invalidate_old_session",
]
COMPENSATED_SWITCH_STEPS = {"update_current_tenant", "create_session", "invalidate_old_session"}


def _switch(session_id: str) -> TenantSwitchingInput:
    return TenantSwitchingInput(
        user_id=ALICE.id,
        from_tenant_id="acme",
        to_tenant_id="globex",
        current_session_id=session_id,
    )


async def test_switching_moves_the_user_to_the_other_tenant(stack: Stack) -> None:
    tenants = TenantStore(stack.db)
    sessions = components(stack.runtimes["auth"]).sessions
    session_id = await _session(stack, ALICE.id, "acme")
    previous = await tenants.current_tenant(ALICE.id)
    async with stack.workers():
        outcome = await stack.ops.execute(
            ALICE_IN_ACME,
            WorkflowType.TENANT_SWITCHING.value,
            _switch(session_id),
            budget=timedelta(seconds=30),
            result_type=TenantSwitchingResult,
        )
    result = outcome.result
    assert result is not None
    assert result.tenant.tenant.id == "globex"
    assert result.roles == ["member"]
    assert result.tenant.roles == ["member"]
    assert result.exchange_code
    assert await tenants.current_tenant(ALICE.id) == "globex"
    new = await sessions.get(result.session_id)
    assert new is not None
    assert new.tenant_id == "globex"
    assert new.revoked_at is None
    old = await sessions.get(session_id)
    assert old is not None
    assert old.revoked_at is not None
    audit = await tenants.rows(switches)
    mine = [row for row in audit if row["operation_id"] == outcome.operation.id]
    assert len(mine) == 1
    assert mine[0]["from_tenant_id"] == previous
    assert mine[0]["to_tenant_id"] == "globex"


@pytest.mark.parametrize(("step", "activity", "when"), SWITCHING_STEPS)
async def test_switching_failing_at_each_step_changes_nothing(
    stack: Stack, step: str, activity: str, when: Callable[[dict[str, Any]], bool]
) -> None:
    session_id = await _session(stack, ALICE.id, "acme")
    before = await snapshot(stack.db)
    async with stack.workers({activity: stand_in(stack, activity, when=when)}):
        failure = await _fails(
            stack.ops.execute(
                ALICE_IN_ACME,
                WorkflowType.TENANT_SWITCHING.value,
                _switch(session_id),
                budget=timedelta(seconds=30),
                result_type=TenantSwitchingResult,
            )
        )
    assert failure.message == "injected failure"
    done = SWITCH_ORDER[: SWITCH_ORDER.index(step)]
    assert failure.compensations == [s for s in reversed(done) if s in COMPENSATED_SWITCH_STEPS]
    assert await snapshot(stack.db) == before


async def test_switching_cancelled_mid_way_changes_nothing(stack: Stack) -> None:
    session_id = await _session(stack, ALICE.id, "acme")
    before = await snapshot(stack.db)
    slow = stand_in(stack, TenantTask.LOAD_TENANT_DATA, fail=False, delay=30)
    async with stack.workers({TenantTask.LOAD_TENANT_DATA: slow}):
        operation = await stack.ops.start(
            ALICE_IN_ACME, WorkflowType.TENANT_SWITCHING.value, _switch(session_id)
        )
        await wait_for_event(
            stack.ops,
            ALICE_IN_ACME,
            operation.id,
            lambda e: e.kind is EventKind.STEP_STARTED and e.step == "load_tenant_data",
        )
        assert await TenantStore(stack.db).current_tenant(ALICE.id) == "globex"
        await stack.ops.cancel(ALICE_IN_ACME, operation.id, "test")
        with pytest.raises(WorkflowFailureError) as raised:
            await stack.ops.client.get_workflow_handle(operation.id).result()
        assert isinstance(raised.value.cause, CancelledError)
        events = (await stack.ops.progress(ALICE_IN_ACME, operation.id)).report.events
    compensated = [e.step for e in events if e.kind is EventKind.COMPENSATION_COMPLETED]
    assert compensated == ["create_session", "update_current_tenant"]
    assert await snapshot(stack.db) == before


async def test_switching_to_a_tenant_of_which_the_user_is_not_a_member_is_refused(
    stack: Stack,
) -> None:
    bob_in_globex = _owner_in("globex", BOB.id)
    session_id = await _session(stack, BOB.id, "globex")
    before = await snapshot(stack.db)
    async with stack.workers():
        failure = await _fails(
            stack.ops.execute(
                bob_in_globex,
                WorkflowType.TENANT_SWITCHING.value,
                TenantSwitchingInput(
                    user_id=BOB.id,
                    from_tenant_id="globex",
                    to_tenant_id="acme",
                    current_session_id=session_id,
                ),
                budget=timedelta(seconds=30),
                result_type=TenantSwitchingResult,
            )
        )
    assert failure.kind.value == "NotFoundError"
    assert failure.message == "tenant not found"
    assert failure.compensations == []
    assert await snapshot(stack.db) == before


# Upgrade ---------------------------------------------------------------------------------

UPGRADE_STEPS: list[tuple[str, str]] = [
    ("prepare_upgrade", TenantTask.PREPARE_UPGRADE),
    ("create_invoice", TenantTask.CREATE_INVOICE),
    ("charge", TenantTask.CHARGE_INVOICE),
    ("apply_plan", TenantTask.APPLY_PLAN),
]


async def test_upgrade_charges_an_invoice_and_changes_the_plan(stack: Stack) -> None:
    tenant_id = await _owned_tenant(stack)
    async with stack.workers():
        outcome = await stack.ops.execute(
            _owner_in(tenant_id),
            WorkflowType.TENANT_UPGRADE.value,
            TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.ENTERPRISE),
            budget=timedelta(seconds=30),
            result_type=TenantUpgradeResult,
        )
    result = outcome.result
    assert result is not None
    assert result.previous_plan is Plan.FREE
    assert result.plan is Plan.ENTERPRISE
    assert result.invoice.status is InvoiceStatus.PAID
    assert result.invoice.amount_cents == terms(Plan.ENTERPRISE).price_cents
    tenant = await TenantStore(stack.db).get_tenant(tenant_id)
    assert tenant is not None
    assert tenant.plan is Plan.ENTERPRISE
    assert tenant.quotas == terms(Plan.ENTERPRISE).quotas
    invoices = await TenantStore(stack.db).invoices_of(tenant_id)
    assert [i.id for i in invoices] == [result.invoice.id]


async def test_upgrade_by_a_member_who_is_not_owner_is_refused(stack: Stack) -> None:
    tenant_id = await _owned_tenant(stack)
    before = await snapshot(stack.db)
    member = RequestContext(user_id=ALICE.id, tenant_id=tenant_id, roles=("admin", "member"))
    async with stack.workers():
        failure = await _fails(
            stack.ops.execute(
                member,
                WorkflowType.TENANT_UPGRADE.value,
                TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.ENTERPRISE),
                budget=timedelta(seconds=30),
            )
        )
    assert failure.kind.value == "AuthorizationError"
    assert await snapshot(stack.db) == before


@pytest.mark.parametrize(("step", "activity"), UPGRADE_STEPS)
async def test_upgrade_failing_at_each_step_changes_nothing(
    stack: Stack, step: str, activity: str
) -> None:
    tenant_id = await _owned_tenant(stack)
    before = await snapshot(stack.db)
    async with stack.workers({activity: stand_in(stack, activity)}, services=("tenant",)):
        failure = await _fails(
            stack.ops.execute(
                _owner_in(tenant_id),
                WorkflowType.TENANT_UPGRADE.value,
                TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.PROFESSIONAL),
                budget=timedelta(seconds=30),
                result_type=TenantUpgradeResult,
            )
        )
    assert failure.message == "injected failure"
    done = [name for name, _ in UPGRADE_STEPS[: UPGRADE_STEPS.index((step, activity))]]
    assert failure.compensations == [s for s in reversed(done) if s != "prepare_upgrade"]
    assert await snapshot(stack.db) == before


async def test_upgrade_cancelled_mid_way_changes_nothing(stack: Stack) -> None:
    tenant_id = await _owned_tenant(stack)
    owner = _owner_in(tenant_id)
    before = await snapshot(stack.db)
    # The plan is applied after the cancel arrived: awaited, then undone with the charge.
    slow = stand_in(stack, TenantTask.APPLY_PLAN, fail=False, delay=2)
    async with stack.workers({TenantTask.APPLY_PLAN: slow}, services=("tenant",)):
        operation = await stack.ops.start(
            owner,
            WorkflowType.TENANT_UPGRADE.value,
            TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.ENTERPRISE),
        )
        await wait_for_event(
            stack.ops,
            owner,
            operation.id,
            lambda e: e.kind is EventKind.STEP_STARTED and e.step == "apply_plan",
        )
        paid = await TenantStore(stack.db).invoices_of(tenant_id)
        assert [i.status for i in paid] == [InvoiceStatus.PAID]
        await stack.ops.cancel(owner, operation.id, "test")
        with pytest.raises(WorkflowFailureError) as raised:
            await stack.ops.client.get_workflow_handle(operation.id).result()
        assert isinstance(raised.value.cause, CancelledError)
    assert await snapshot(stack.db) == before


# Suspension ------------------------------------------------------------------------------


async def test_suspension_revokes_access_keeps_data_and_resumes(stack: Stack) -> None:
    tenant_id = await _owned_tenant(stack, Plan.PROFESSIONAL)
    owner = _owner_in(tenant_id)
    tenants = TenantStore(stack.db)
    auth = AuthStore(stack.runtimes["auth"].db)
    sessions = components(stack.runtimes["auth"]).sessions
    members = [m.user_id for m in await tenants.members(tenant_id)]
    session_in_tenant = await _session(stack, members[1], tenant_id)
    session_elsewhere = await _session(stack, ALICE.id, "acme")
    members_before = await tenants.members(tenant_id)
    async with stack.workers():
        operation = await stack.ops.start(
            owner,
            WorkflowType.TENANT_SUSPENSION.value,
            TenantSuspensionInput(tenant_id=tenant_id, reason="unpaid"),
        )
        await wait_for_event(stack.ops, owner, operation.id, lambda e: e.step == "suspended")
        tenant = await tenants.get_tenant(tenant_id)
        assert tenant is not None
        assert tenant.status is TenantStatus.SUSPENDED
        for user_id in members:
            grant = await auth.get_grant(user_id, tenant_id)
            assert grant is not None
            assert grant.status is GrantStatus.SUSPENDED
        revoked = await sessions.get(session_in_tenant)
        assert revoked is not None
        assert revoked.revoked_at is not None
        untouched = await sessions.get(session_elsewhere)
        assert untouched is not None
        assert untouched.revoked_at is None
        # Data preserved while suspended.
        assert await tenants.members(tenant_id) == members_before

        # Only an owner of the tenant may resume: another's signal is ignored.
        handle = stack.ops.client.get_workflow_handle(operation.id)
        with use_context(_owner_in("globex", BOB.id)):
            await handle.signal(
                SignalName.RESUME_TENANT.value, ResumeTenantSignal(requested_by=BOB.id)
            )
        with use_context(owner):
            await handle.signal(
                SignalName.RESUME_TENANT.value, ResumeTenantSignal(requested_by=ALICE.id)
            )
        result = await stack.ops.result(owner, operation.id, result_type=TenantSuspensionResult)
    assert result.outcome is SuspensionOutcome.RESUMED
    assert result.resumed_by == ALICE.id
    assert sorted(result.suspended_members) == sorted(members)
    tenant = await tenants.get_tenant(tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.plan is Plan.PROFESSIONAL
    for user_id in members:
        grant = await auth.get_grant(user_id, tenant_id)
        assert grant is not None
        assert grant.status is GrantStatus.ACTIVE
    assert await tenants.members(tenant_id) == members_before


async def test_suspension_resumes_by_itself_after_the_timeout(stack: Stack) -> None:
    tenant_id = await _owned_tenant(stack)
    owner = _owner_in(tenant_id)
    async with stack.workers():
        outcome = await stack.ops.execute(
            owner,
            WorkflowType.TENANT_SUSPENSION.value,
            TenantSuspensionInput(tenant_id=tenant_id, resume_after_seconds=1),
            budget=timedelta(seconds=30),
            result_type=TenantSuspensionResult,
        )
    assert outcome.result is not None
    assert outcome.result.outcome is SuspensionOutcome.RESUMED_AFTER_TIMEOUT
    tenant = await TenantStore(stack.db).get_tenant(tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE


# Read workflow ---------------------------------------------------------------------------


async def test_get_tenant_data_reads_the_callers_tenant_only(stack: Stack) -> None:
    before = await snapshot(stack.db)
    async with stack.workers(services=("tenant",)):
        outcome = await stack.ops.execute(
            ALICE_IN_ACME,
            WorkflowType.GET_TENANT_DATA.value,
            GetTenantDataInput(tenant_id="acme"),
            budget=timedelta(seconds=30),
            result_type=TenantData,
        )
        data = outcome.result
        assert data is not None
        assert data.tenant.id == "acme"
        assert data.plan is Plan.PROFESSIONAL
        assert data.member_count >= 1
        assert data.roles == list(OWNER)
        assert data.quotas == terms(Plan.PROFESSIONAL).quotas
        failure = await _fails(
            stack.ops.execute(
                ALICE_IN_ACME,
                WorkflowType.GET_TENANT_DATA.value,
                GetTenantDataInput(tenant_id="globex"),
                budget=timedelta(seconds=30),
                result_type=TenantData,
            )
        )
    assert failure.kind.value == "TenantIsolationViolation"
    assert await snapshot(stack.db) == before
