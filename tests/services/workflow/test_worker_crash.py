"""The workflow service's worker killed with SIGKILL mid-saga and started again: the
onboarding completes, every step ran once, and nothing happened twice (rows, emails)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import Table, func, select
from temporalio.api.enums.v1 import EventType

from adx.settings import Settings
from contracts.names import WorkflowType
from contracts.workflow import UserOnboardingInput, UserOnboardingResult
from services.auth.store import email_outbox as auth_outbox
from services.auth.store import users as auth_users
from services.common.db import Database
from services.user.store import memberships, preferences, profiles
from tests.services.workflow.conftest import run_stack
from tests.services.workflow.support import ALICE_IN_ACME, tenant_members, unique_email
from tests.support.smtp import Mailbox
from tests.support.worker_process import service_worker


async def _rows(db: Database, table: Table, column: str, value: str) -> int:
    query = select(func.count()).select_from(table).where(table.c[column] == value)
    async with db.transaction() as session:
        return int((await session.execute(query)).scalar_one())


async def test_onboarding_survives_a_killed_worker(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox
) -> None:
    async with run_stack(settings, tmp_path, smtp_server, workflow_worker=False) as stack:
        log_path = tmp_path / "workflow-worker.log"
        email = unique_email("crash")
        stack.tenant.gate = asyncio.Event()  # the saga waits in add_member meanwhile
        async with service_worker("workflow", stack.settings, log_path) as first:
            operation = await stack.ops.start(
                ALICE_IN_ACME,
                WorkflowType.USER_ONBOARDING.value,
                UserOnboardingInput(email=email, display_name="Crash Test", tenant_id="acme"),
            )
            async with asyncio.timeout(30):
                while stack.tenant.add_calls == 0:
                    await asyncio.sleep(0.05)
            assert await first.kill() == -signal.SIGKILL
        stack.tenant.gate.set()
        async with service_worker("workflow", stack.settings, log_path):
            result = await asyncio.wait_for(
                stack.ops.result(ALICE_IN_ACME, operation.id, result_type=UserOnboardingResult),
                60,
            )
        assert result.invited is True

        # Every activity was scheduled once: the new worker replayed, it did not redo.
        history = await stack.ops.client.get_workflow_handle(operation.id).fetch_history()
        scheduled = [
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert sorted(scheduled) == sorted(
            [
                "auth.create_invited_user",
                "user.create_profile",
                "tenant.add_member",
                "auth.grant_tenant_access",
                "user.init_preferences",
                "auth.send_invitation",
            ]
        )
        assert stack.tenant.add_calls == 1
        # And nothing exists twice.
        auth_db, user_db = stack.auth.runtime.db, stack.user.runtime.db
        user_id = result.user_id
        assert await _rows(auth_db, auth_users, "email", email) == 1
        assert await _rows(auth_db, auth_outbox, "recipient", email) == 1
        assert await _rows(user_db, profiles, "user_id", user_id) == 1
        assert await _rows(user_db, memberships, "user_id", user_id) == 1
        assert await _rows(user_db, preferences, "user_id", user_id) == 1
        assert await _rows(stack.tenant_db, tenant_members, "user_id", user_id) == 1
        await smtp_server.wait_for(email, 1)
        await asyncio.sleep(0.5)
        assert len(smtp_server.to(email)) == 1
