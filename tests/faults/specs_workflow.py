"""The workflow service's sagas: user_onboarding (auth account, profile, membership, grant,
workspace, then the invitation email, after which the user exists for good) and
compliance_erase (an audit record, each service's erase, recorded as it goes)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from adx.histories import Harness, _alice, _new_member
from contracts.auth import AuthActivity
from contracts.context import RequestContext
from contracts.names import WorkflowType
from contracts.tenant import TenantActivity
from contracts.user import UserActivity
from contracts.workflow import (
    ComplianceEraseInput,
    ComplianceEraseResult,
    UserOnboardingInput,
    UserOnboardingResult,
    WorkflowActivity,
)
from services.auth.activities import issue_reauthentication
from services.auth.store import AuthStore
from tests.faults.harness import (
    Arm,
    Prepared,
    SagaSpec,
    SagaStep,
    mentions,
)
from workflow_client.operations import new_operation_id


async def prepare(h: Harness) -> Prepared:
    _, alice = _alice()
    email = f"invitee-{uuid.uuid4().hex[:8]}@faults.test"
    invite = UserOnboardingInput(
        email=email, display_name="Invited Person", tenant_id="acme", tenant_name="Acme"
    )
    return Prepared(alice, invite, {"email": email})


async def applied(h: Harness, prepared: Prepared, result: Any) -> None:
    user_id = UserOnboardingResult.model_validate(result).user_id
    email = prepared.facts["email"]
    assert len(await mentions(h, "auth", "auth_users", email)) == 1
    assert len(await mentions(h, "user", "user_profiles", user_id)) == 1
    assert len(await mentions(h, "tenant", "tenant_memberships", user_id, "acme")) == 1
    assert len(await mentions(h, "auth", "auth_tenant_grants", user_id, "acme")) == 1
    assert len(await mentions(h, "user", "user_preferences", user_id)) == 1
    # One invitation, however the run went.
    assert len(await mentions(h, "auth", "auth_email_outbox", email)) == 1


ONBOARDING = SagaSpec(
    workflow_type=WorkflowType.USER_ONBOARDING,
    steps=(
        SagaStep("create_credentials", AuthActivity.CREATE_INVITED_USER),
        SagaStep("create_profile", UserActivity.CREATE_PROFILE),
        SagaStep("add_tenant_member", TenantActivity.ADD_MEMBER),
        SagaStep("grant_tenant_access", AuthActivity.GRANT_TENANT_ACCESS),
        SagaStep("init_workspace", UserActivity.INIT_PREFERENCES),
        SagaStep("send_welcome_email", AuthActivity.SEND_INVITATION, compensated=False),
    ),
    prepare=prepare,
    applied=applied,
    pivot="send_welcome_email",
)

# Compliance erase ---------------------------------------------------------------------------


async def prepare_erase(h: Harness) -> Prepared:
    """The user's own erasure: all of their data, in every service (a tenant admin's covers
    that tenant's only, tests/services/workflow/test_compliance.py)."""
    subject = await _new_member(h)
    me = RequestContext(user_id=subject, tenant_id="acme", roles=("member",))
    return Prepared(me, None, {"user_id": subject})


async def start_erase(h: Harness, prepared: Prepared, key: str, arm: Arm) -> str:
    """Each request with a fresh proof of the password, as the user would make it again."""
    proof, _ = await issue_reauthentication(
        AuthStore(h.runtimes["auth"].db), prepared.context.user_id
    )
    erase = ComplianceEraseInput(
        user_id=prepared.context.user_id, reason="fault injection", reauthentication=proof
    )
    arm(new_operation_id(WorkflowType.COMPLIANCE_ERASE.value, prepared.context, key))
    operation = await h.ops.start(
        prepared.context, WorkflowType.COMPLIANCE_ERASE.value, erase, request_key=key
    )
    return operation.id


async def erased(h: Harness, prepared: Prepared, result: Any) -> None:
    outcome = ComplianceEraseResult.model_validate(result)
    user_id = prepared.facts["user_id"]
    for service, table in (
        ("user", "user_profiles"),
        ("user", "user_memberships"),
        ("auth", "auth_users"),
        ("auth", "auth_tenant_grants"),
    ):
        assert not await mentions(h, service, table, user_id), table
    (audit,) = await mentions(h, "workflow", "workflow_erase_audit", outcome.request_id)
    assert audit["status"] == "completed"
    # Each service's counts recorded (a raw read gives the JSON column as text).
    assert set(json.loads(audit["services"])) == {"user", "tenant", "auth", "workflow"}


async def recorded_failed(h: Harness, prepared: Prepared, operation_id: str) -> None:
    """An erasure that did not complete says so: its audit record (if it got one) is
    "failed", never left "running"."""
    for audit in await mentions(h, "workflow", "workflow_erase_audit", operation_id):
        assert audit["status"] == "failed", audit


ERASE = SagaSpec(
    workflow_type=WorkflowType.COMPLIANCE_ERASE,
    steps=(
        # The proof of the password, spent (nothing to undo: a new request brings a new one).
        SagaStep("confirm_identity", AuthActivity.CONSUME_REAUTHENTICATION, compensated=False),
        # Its compensation records the request failed.
        SagaStep("record_audit", WorkflowActivity.START_ERASE_AUDIT),
        *(
            step
            for n, erase in enumerate(
                (
                    # One's own erasure takes the account last.
                    UserActivity.ERASE_USER_DATA,
                    TenantActivity.ERASE_USER_DATA,
                    WorkflowActivity.ERASE_USER_DATA,
                    AuthActivity.ERASE_USER_DATA,
                ),
                start=1,
            )
            for step in (
                SagaStep(f"erase_{erase.split('.')[0]}", erase, compensated=False),
                SagaStep(
                    f"record_{erase.split('.')[0]}",
                    WorkflowActivity.RECORD_ERASE_STEP,
                    compensated=False,
                    nth=n,
                ),
            )
        ),
        SagaStep("finish_audit", WorkflowActivity.FINISH_ERASE_AUDIT, compensated=False),
    ),
    prepare=prepare_erase,
    start=start_erase,
    applied=erased,
    # Once the account is erased (the last service) the request completes: the user could not
    # ask again.
    pivot="erase_auth",
    # Erasure cannot be undone: a request that did not complete is recorded failed, and the
    # same request made again erases what is left (every service's erase is idempotent).
    resumable=True,
    unfinished=recorded_failed,
)

SPECS = (ONBOARDING, ERASE)
