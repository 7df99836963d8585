"""The workflow service's cross-service scenarios: onboarding and the compliance export and
erase."""

from __future__ import annotations

from adx.histories.scenarios.fixtures import _alice, _new_member, _unique
from adx.histories.scenarios.registry import Recorded, _compensated, recorded, scenario
from adx.histories.stack import Harness
from contracts.context import RequestContext
from contracts.names import WorkflowType
from services.auth.activities import issue_reauthentication
from services.auth.store import AuthStore


@scenario(WorkflowType.USER_ONBOARDING)
async def onboarding(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.user import UserActivity
    from contracts.workflow import UserOnboardingInput

    _, alice = _alice()
    runs: list[Recorded] = []
    for path in ("success", "failure-compensated", "cancelled-compensated"):
        invite = UserOnboardingInput(
            email=f"{_unique('invitee')}@histories.test",
            display_name="Invited Person",
            tenant_id="acme",
            tenant_name="Acme Corporation",
        )
        if path == "success":
            workflow_id, _ = await h.start(alice, WorkflowType.USER_ONBOARDING, invite)
            await h.completes(alice, workflow_id)
        elif path == "failure-compensated":
            workflow_id, _ = await h.start(
                alice, WorkflowType.USER_ONBOARDING, invite, fail=AuthActivity.SEND_INVITATION
            )
            failed = await h.fails(alice, workflow_id)
            _compensated(failed, "create_credentials")
        else:
            workflow_id, started = await h.start(
                alice, WorkflowType.USER_ONBOARDING, invite, hang=UserActivity.INIT_PREFERENCES
            )
            await h.cancel(alice, workflow_id, started)
        runs += recorded(WorkflowType.USER_ONBOARDING, path, workflow_id)
    return runs


@scenario(WorkflowType.COMPLIANCE_EXPORT)
async def compliance_export(h: Harness) -> list[Recorded]:
    from contracts.workflow import ComplianceExportInput

    alice_id, alice = _alice()
    workflow_id, _ = await h.start(
        alice, WorkflowType.COMPLIANCE_EXPORT, ComplianceExportInput(user_id=alice_id)
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.COMPLIANCE_EXPORT, "success", workflow_id)


@scenario(WorkflowType.COMPLIANCE_ERASE)
async def compliance_erase(h: Harness) -> list[Recorded]:
    from contracts.tenant import TenantActivity
    from contracts.workflow import ComplianceEraseInput

    _, alice = _alice()
    runs: list[Recorded] = []
    for path, fault in (("success", None), ("failure-audited", TenantActivity.ERASE_USER_DATA)):
        subject = await _new_member(h)
        workflow_id, _ = await h.start(
            alice,
            WorkflowType.COMPLIANCE_ERASE,
            ComplianceEraseInput(user_id=subject, reason="recorded request"),
            fail=fault,
        )
        if fault is None:
            await h.completes(alice, workflow_id)
        else:
            await h.fails(alice, workflow_id)
        runs += recorded(WorkflowType.COMPLIANCE_ERASE, path, workflow_id)
    # One's own erasure: a fresh proof of the password first, the account last.
    subject = await _new_member(h)
    proof, _ = await issue_reauthentication(AuthStore(h.runtimes["auth"].db), subject)
    own = RequestContext(user_id=subject, tenant_id="acme", roles=("member",))
    workflow_id, _ = await h.start(
        own,
        WorkflowType.COMPLIANCE_ERASE,
        ComplianceEraseInput(user_id=subject, reason="recorded request", reauthentication=proof),
    )
    await h.completes(own, workflow_id)
    return [*runs, *recorded(WorkflowType.COMPLIANCE_ERASE, "own-erasure", workflow_id)]
