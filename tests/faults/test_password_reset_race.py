"""A password reset cancelled around the person's confirmation: once the password has changed
the reset completes and every session ends (the cancel is dropped), whether the confirmation
reaches the workflow with the cancel or while the cancel is ending the link; cancelled while
nobody has used the link, it ends with the link expired."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from adx.faults import Fault, Point
from adx.histories import Harness, _link_token
from contracts.auth import AuthActivity
from tests.faults.conftest import FaultStack
from tests.faults.harness import Prepared, history_has, mentions
from tests.faults.specs_auth import NEW_PASSWORD, PASSWORD_RESET, confirm_the_reset, reset_done
from workflow_client.operations import new_operation_id


async def waiting_reset(h: Harness, hold: str | None = None) -> tuple[Prepared, str, Fault | None]:
    """A reset whose email went out and that waits for the person; ``hold``: an activity of
    it held before its body runs."""
    prepared = await PASSWORD_RESET.prepare(h)
    assert prepared.input is not None
    key = uuid.uuid4().hex
    workflow_id = new_operation_id(PASSWORD_RESET.workflow_type.value, prepared.context, key)
    held = h.faults.add(workflow_id, hold, Point.HOLD_BEFORE) if hold else None
    await h.ops.start(
        prepared.context, PASSWORD_RESET.workflow_type.value, prepared.input, request_key=key
    )
    await history_has(h, workflow_id, EventType.EVENT_TYPE_TIMER_STARTED)
    return prepared, workflow_id, held


async def test_a_reset_confirmed_with_the_cancel_completes(
    stack: FaultStack, harness: Harness
) -> None:
    """The confirmation's signal and the cancel reach the workflow in one task."""
    h, workflows = harness, stack.workflows
    prepared, workflow_id, _ = await waiting_reset(h)

    await workflows.kill()
    # The confirm endpoint changes the password, then signals the workflow (and waits for it).
    confirm = asyncio.create_task(confirm_the_reset(h, prepared, workflow_id))
    await history_has(h, workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    await h.ops.cancel(prepared.context, workflow_id, "racing the reset")
    await history_has(h, workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    await workflows.start()

    await h.completes(prepared.context, workflow_id)
    await h.expect_status(workflow_id, WorkflowExecutionStatus.COMPLETED)
    await reset_done(h, prepared, None)
    await confirm


async def test_a_reset_cancelled_before_the_link_was_used_expires_it(harness: Harness) -> None:
    h = harness
    prepared, workflow_id, _ = await waiting_reset(h)
    await h.ops.cancel(prepared.context, workflow_id, "changed my mind")
    await h.fails(prepared.context, workflow_id)
    await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)

    (session,) = await mentions(h, "auth", "auth_sessions", prepared.facts["session"])
    assert session["revoked_at"] is None  # nothing was reset: the sessions go on
    # The link in the email went out with the operation, and grants nothing now.
    token = await _link_token(h, prepared.facts["email"])
    refused = await h.http["auth"].post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert refused.status_code == 422, refused.text
    login = await h.http["auth"].post(
        "/api/auth/login", json={"email": prepared.facts["email"], "password": NEW_PASSWORD}
    )
    assert login.status_code == 401, login.text


async def test_a_reset_confirmed_while_the_cancel_ends_the_link_completes(
    harness: Harness,
) -> None:
    """The cancel reached the workflow first; the person used the link before the workflow
    ended its token: the password has changed, so the sessions end and the reset completes."""
    h = harness
    prepared, workflow_id, held = await waiting_reset(h, hold=AuthActivity.EXPIRE_TOKEN)
    assert held is not None
    try:
        await h.ops.cancel(prepared.context, workflow_id, "racing the reset")
        async with asyncio.timeout(30):
            await held.reached.wait()  # the token is about to be ended
        confirm = asyncio.create_task(confirm_the_reset(h, prepared, workflow_id))
        await history_has(h, workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        held.release.set()

        await h.completes(prepared.context, workflow_id)
        await h.expect_status(workflow_id, WorkflowExecutionStatus.COMPLETED)
        await reset_done(h, prepared, None)
        await confirm
    finally:
        h.faults.clear(workflow_id)
