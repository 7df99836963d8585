"""The cross-service workflows with the real tenant service's worker instead of the stand-in."""

from __future__ import annotations

from pathlib import Path

from adx.settings import Settings
from contracts.names import WorkflowType
from contracts.workflow import ComplianceEraseInput, ComplianceEraseResult
from tests.services.workflow.conftest import run_stack
from tests.services.workflow.support import ALICE_IN_ACME, member_in_acme, rows_mentioning
from tests.services.workflow.test_compliance import onboarded_user, reauthenticated
from tests.support.smtp import Mailbox


async def test_onboarding_and_erasure_with_the_tenant_service(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox
) -> None:
    async with run_stack(settings, tmp_path, smtp_server, real_tenant=True) as stack:
        user_id, email = await onboarded_user(stack)
        assert await rows_mentioning(stack.tenant_db, user_id)  # the membership is there
        # The admin's erasure takes acme's membership; the user's own, the rest.
        for who in (ALICE_IN_ACME, member_in_acme(user_id)):
            proof = await reauthenticated(stack, email) if who is not ALICE_IN_ACME else None
            erase = ComplianceEraseInput(user_id=user_id, reauthentication=proof)
            operation = await stack.ops.start(who, WorkflowType.COMPLIANCE_ERASE.value, erase)
            result = await stack.ops.result(who, operation.id, result_type=ComplianceEraseResult)
            if who is ALICE_IN_ACME:
                assert result.services["tenant"]["tenant_memberships"] == 1
                assert not await rows_mentioning(stack.tenant_db, user_id)
        for name, db in stack.dbs().items():
            assert await rows_mentioning(db, user_id, email) == {}, name
