"""The cross-service workflows with the real tenant service's worker instead of the stand-in
(skipped while the tenant service does not exist)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from adx.settings import Settings
from contracts.names import WorkflowType
from contracts.workflow import ComplianceEraseInput, ComplianceEraseResult
from tests.services.workflow.conftest import run_stack
from tests.services.workflow.support import ALICE_IN_ACME, rows_mentioning
from tests.services.workflow.test_compliance import onboarded_user
from tests.support.smtp import Mailbox

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("services.tenant.service") is None,
    reason="the tenant service does not exist yet",
)


async def test_onboarding_and_erasure_with_the_tenant_service(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox
) -> None:
    async with run_stack(settings, tmp_path, smtp_server, real_tenant=True) as stack:
        user_id, email = await onboarded_user(stack)
        assert await rows_mentioning(stack.tenant_db, user_id)  # the membership is there
        operation = await stack.ops.start(
            ALICE_IN_ACME,
            WorkflowType.COMPLIANCE_ERASE.value,
            ComplianceEraseInput(user_id=user_id),
        )
        result = await stack.ops.result(
            ALICE_IN_ACME, operation.id, result_type=ComplianceEraseResult
        )
        assert sum(result.services["tenant"].values()) >= 1
        for name, db in stack.dbs().items():
            assert await rows_mentioning(db, user_id, email) == {}, name
