"""A worker process killed with SIGKILL in the middle of a registration: a new worker process
finishes it, and nothing the first one did is done twice."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from adx.settings import Settings
from contracts.auth import UserRegistrationResult, UserStatus
from services.auth.activities import AuthComponents
from services.auth.service import SERVICE
from services.auth.store import tokens
from tests.services.auth.conftest import service_settings
from tests.services.auth.support import PASSWORD, link_token, login, unique_email
from tests.support.services import running_service
from tests.support.smtp import Mailbox
from tests.support.worker_process import service_worker


async def wait_for_completed_activity(client: Client, workflow_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            if any(e.HasField("activity_task_completed_event_attributes") for e in history.events):
                return
            await asyncio.sleep(0.1)


async def test_a_registration_survives_its_worker_being_killed(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox
) -> None:
    configured = service_settings(settings, tmp_path, smtp_server)
    email = unique_email("olga")
    # Server mode in the test process; worker mode only in the child processes.
    async with (
        running_service(SERVICE, configured, worker=False) as service,
        httpx.AsyncClient(base_url=service.url, timeout=60) as http,
    ):
        parts = service.runtime.components.get(AuthComponents)
        async with service_worker("auth", configured, tmp_path / "worker-1.log") as first:
            response = await http.post(
                "/api/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code == 202, response.text
            operation_id = response.json()["operation_id"]
            # The first worker sent the email; once that step is recorded, the workflow
            # waits for the link (a kill between the SMTP answer and the record would be the
            # email outbox's documented at-least-once window, not what this test is about).
            (message,) = await smtp_server.wait_for(email)
            await wait_for_completed_activity(service.runtime.client, operation_id)
            assert await first.kill() == -signal.SIGKILL

        async with service_worker("auth", configured, tmp_path / "worker-2.log"):
            verified = await http.get("/api/auth/verify", params={"token": link_token(message)})
            assert verified.status_code in (200, 202), verified.text
            handle = service.runtime.client.get_workflow_handle(
                operation_id, result_type=UserRegistrationResult
            )
            result = await asyncio.wait_for(handle.result(), 60)

        user = await parts.store.user_by_email(email)
        assert user is not None
        assert result.user_id == user.id
        assert user.status is UserStatus.ACTIVE
        await login(http, email)
        # One email, one outbox row, one token: the restarted worker replayed, not redid.
        await asyncio.sleep(0.5)
        assert len(smtp_server.to(email)) == 1
        assert len(await parts.outbox.recent(to=email)) == 1
        async with parts.store.db.transaction() as session:
            count = await session.execute(select(func.count()).where(tokens.c.user_id == user.id))
            assert count.scalar_one() == 1
        history = await handle.fetch_history()
        scheduled = [
            event
            for event in history.events
            if event.HasField("activity_task_scheduled_event_attributes")
        ]
        names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
        assert names.count("auth.send_verification_email") == 1
        await parts.close()
