"""The takeover that was possible: a provisioning cancelled while the owner's grant was being
made left that grant behind, for a tenant id another user could then provision and be owned
by it. Now the grant is undone with the rest, a late attempt of it makes nothing, and the id
goes to nobody else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus

from adx.faults import Point
from adx.histories import OWNER, Harness, _alice
from contracts.auth import GrantStatus
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.tenant import TenantProvisioningInput
from services.auth.store import AuthStore
from services.common.before import OperationUndone
from tests.faults.harness import cancel_reached_the_workflow, mentions, start_faulted
from tests.faults.specs_tenant import PROVISIONING
from tests.support.operations import forward


async def test_a_cancelled_provisionings_id_cannot_be_taken_over(harness: Harness) -> None:
    h = harness
    prepared = await PROVISIONING.prepare(h)
    tenant_id, alice_id = prepared.facts["tenant_id"], prepared.facts["owner"]
    grant_step = PROVISIONING.steps[PROVISIONING.step_index("grant_owner_access")]
    workflow_id, fault = await start_faulted(
        h, PROVISIONING, prepared, grant_step, Point.HOLD_AFTER
    )
    await fault.reached.wait()
    await h.ops.cancel(prepared.context, workflow_id, "takeover test")
    await cancel_reached_the_workflow(h, workflow_id)
    fault.release.set()
    failed = await h.fails(prepared.context, workflow_id)
    await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)
    assert "grant_owner_access" in failed.compensations
    assert await mentions(h, "auth", "auth_tenant_grants", alice_id, tenant_id) == []

    # An attempt of the grant that outlived its timeout commits only now: the compensation
    # (in the worker, started by the kernel's undo) has fenced it, so it makes nothing.
    late = AuthStore(h.runtimes["auth"].db)
    with pytest.raises(OperationUndone):
        await forward(
            fault.workflow_id or workflow_id,
            lambda: late.upsert_grant(
                alice_id, tenant_id, list(OWNER), GrantStatus.ACTIVE, datetime.now(UTC)
            ),
        )
    assert await mentions(h, "auth", "auth_tenant_grants", alice_id, tenant_id) == []

    # Someone else asks for the same id: refused, and nothing of alice's reaches them.
    mallory = RequestContext(user_id="mallory-0001", tenant_id="acme", roles=OWNER)
    taken = await h.start(
        mallory,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=tenant_id, name="Not Yours"),
    )
    refused = await h.fails(mallory, taken[0])
    assert refused.kind is ErrorKind.CONFLICT
    assert await mentions(h, "tenant", "tenant_tenants", tenant_id) == []

    # Alice may try again and gets her tenant.
    _, alice = _alice()
    again, _ = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=tenant_id, name="Mine After All"),
    )
    await h.completes(alice, again)
    assert len(await mentions(h, "auth", "auth_tenant_grants", alice_id, tenant_id)) == 1
