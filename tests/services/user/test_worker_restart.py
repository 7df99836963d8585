"""A user worker process killed with SIGKILL mid-workflow, then restarted: the workflow
completes and no side effect happens twice (bulk items, emails, session revocation, log)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType

from adx.settings import Settings
from contracts.auth import UserStatus as AuthUserStatus
from contracts.names import TaskQueue, WorkflowType
from contracts.user import (
    ActivityKind,
    BulkAction,
    BulkUserOperationInput,
    BulkUserOperationResult,
    DeactivationOutcome,
    MembershipStatus,
    UserDeactivationResult,
)
from services.user.service import BULK_ITEM_DELAY_ENV, SERVICE
from services.user.store import UserStore, activity_log, bulk_items
from tests.services.user.support import ALICE_IN_ACME, add_member, bearer, wait_for_event
from tests.support.ports import free_port
from tests.support.services import running_service
from tests.support.smtp import Mailbox
from tests.support.stand_ins import AuthStandIn
from tests.support.worker_process import service_worker
from workflow_client.worker import create_worker


async def test_bulk_operation_survives_a_killed_worker(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    worker_settings = settings.model_copy(update={"database_url": database_url})
    log_path = tmp_path / "worker.log"
    try:
        async with running_service(SERVICE, worker_settings, worker=False) as running:
            store = UserStore(running.runtime.db)
            ops = running.runtime.operations
            users = [await add_member(store, f"bulk{index}") for index in range(40)]
            # Each item waits 1 s after committing: killing the worker then loses the
            # completion of items whose effect is already in the database.
            slow = service_worker("user", worker_settings, log_path, **{BULK_ITEM_DELAY_ENV: "1.0"})
            async with slow as first:
                operation = await ops.start(
                    ALICE_IN_ACME,
                    WorkflowType.BULK_USER_OPERATION.value,
                    BulkUserOperationInput(
                        tenant_id="acme",
                        action=BulkAction.SUSPEND,
                        user_ids=users,
                        batch_size=10,
                        item_timeout_seconds=3,
                    ),
                )
                await wait_for_event(
                    ops, ALICE_IN_ACME, operation.id, lambda e: e.completed >= 10, within=60
                )
                reported = (await ops.progress(ALICE_IN_ACME, operation.id)).report.progress
                async with asyncio.timeout(10):
                    while await store.count(bulk_items) <= reported.completed:
                        await asyncio.sleep(0.02)
                assert await first.kill() == -signal.SIGKILL
            applied_at_kill = await store.count(bulk_items)
            assert reported.completed < applied_at_kill < len(users)

            async with service_worker("user", worker_settings, log_path):
                async with asyncio.timeout(60):
                    result = await ops.result(
                        ALICE_IN_ACME, operation.id, result_type=BulkUserOperationResult
                    )
            assert result.succeeded == users
            assert result.failed == []
            # Each item applied exactly once.
            assert await store.count(bulk_items, operation_id=operation.id) == len(users)
            suspended = ActivityKind.MEMBERSHIP_SUSPENDED.value
            assert await store.count(activity_log, kind=suspended) == len(users)
            for user_id in users:
                membership = await store.membership(user_id, "acme")
                assert membership is not None
                assert membership.status is MembershipStatus.SUSPENDED
                assert membership.suspended_by == operation.id
            # The items in flight at the kill were attempted again (and found done).
            history = await ops.client.get_workflow_handle(operation.id).fetch_history()
            retried = [
                event
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                and event.activity_task_started_event_attributes.attempt > 1
            ]
            assert retried
    finally:
        print(log_path.read_text() if log_path.exists() else "(no worker log)")


async def test_deactivation_survives_a_killed_worker_without_repeating_side_effects(
    settings: Settings, tmp_path: Path, smtp_server: Mailbox
) -> None:
    worker_settings = settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'user.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
        }
    )
    log_path = tmp_path / "worker.log"
    stand_in = AuthStandIn()
    try:
        async with (
            running_service(SERVICE, worker_settings, worker=False) as running,
            create_worker(
                running.runtime.client,
                task_queue=TaskQueue.AUTH.value,
                activities=stand_in.activities(),
            ),
            httpx.AsyncClient(base_url=running.url) as http,
        ):
            store = UserStore(running.runtime.db)
            ops = running.runtime.operations
            carol = await add_member(store, "carol", {"acme": ("member",), "globex": ("member",)})
            profile = await store.get_profile(carol)
            assert profile is not None
            admin = bearer(worker_settings, ALICE_IN_ACME)

            async with service_worker("user", worker_settings, log_path) as first:
                response = await http.post(f"/api/user/users/{carol}/deactivate", headers=admin)
                assert response.status_code == 202
                operation_id = response.json()["operation_id"]
                await wait_for_event(
                    ops, ALICE_IN_ACME, operation_id, lambda e: e.step == "grace_period", within=60
                )
                assert await first.kill() == -signal.SIGKILL

            # Restored while no worker runs: the signal waits in Temporal.
            restore = await http.post(f"/api/user/users/{carol}/restore", headers=admin)
            assert restore.status_code == 202
            async with service_worker("user", worker_settings, log_path):
                async with asyncio.timeout(60):
                    result = await ops.result(
                        ALICE_IN_ACME, operation_id, result_type=UserDeactivationResult
                    )
            assert result.outcome is DeactivationOutcome.RESTORED
            mails = await smtp_server.wait_for(profile.email, 2)
            await asyncio.sleep(0.5)  # a duplicate would arrive now
            assert [m["Subject"] for m in smtp_server.to(profile.email)] == [
                m["Subject"] for m in mails
            ]
            assert len(mails) == 2
            # Deactivated and reactivated once each (a replayed step is not asked again).
            assert stand_in.calls == [
                (carol, AuthUserStatus.DEACTIVATED, "acme"),
                (carol, AuthUserStatus.ACTIVE, "acme"),
            ]
            kinds = [e.kind for e in await store.recent_activity("acme", carol, 10)]
            assert kinds == [ActivityKind.USER_RESTORED, ActivityKind.USER_DEACTIVATED]
            memberships = {m.tenant_id: m.status for m in await store.memberships_of(carol)}
            assert set(memberships.values()) == {MembershipStatus.ACTIVE}
    finally:
        print(log_path.read_text() if log_path.exists() else "(no worker log)")


async def test_a_worker_told_to_stop_finishes_its_activities_first(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGTERM (a rolling update, `docker stop`, a scale-down) mid-activity: the worker takes
    no new task, lets the running ones finish within its grace period, then exits; the next
    worker carries on. Nothing is lost, and no activity runs twice (none was cut off)."""
    worker_settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'user.sqlite'}"}
    )
    log_path = tmp_path / "worker.log"
    health = free_port()
    try:
        async with (
            running_service(SERVICE, worker_settings, worker=False) as running,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{health}", timeout=5) as probe,
        ):
            store = UserStore(running.runtime.db)
            ops = running.runtime.operations
            users = [await add_member(store, f"drain{index}") for index in range(12)]
            # Each item takes 2 s after committing: a SIGTERM lands while some are running.
            first = service_worker(
                "user",
                worker_settings,
                log_path,
                **{
                    BULK_ITEM_DELAY_ENV: "2.0",
                    "ADX_WORKER_SHUTDOWN_GRACE_SECONDS": "20",
                    "ADX_WORKER_HEALTH_PORT": str(health),
                },
            )
            process = await first.start()
            operation = await ops.start(
                ALICE_IN_ACME,
                WorkflowType.BULK_USER_OPERATION.value,
                BulkUserOperationInput(
                    tenant_id="acme",
                    action=BulkAction.SUSPEND,
                    user_ids=users,
                    batch_size=4,
                    item_timeout_seconds=10,
                ),
            )
            async with asyncio.timeout(60):
                while await store.count(bulk_items) == 0:  # items are running
                    await asyncio.sleep(0.05)
            assert (await probe.get("/readyz")).status_code == 200
            metrics = await probe.get("/metrics")
            assert "process_resident_memory_bytes " in metrics.text
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while (await probe.get("/readyz")).status_code == 200:
                    await asyncio.sleep(0.05)
            # Draining: alive, not ready.
            assert (await probe.get("/healthz")).status_code == 200
            assert (await probe.get("/readyz")).status_code == 503
            async with asyncio.timeout(30):
                assert await process.wait() == 0
            await first.stop()
            drained = await store.count(bulk_items)
            assert 0 < drained < len(users)

            async with service_worker("user", worker_settings, log_path):
                async with asyncio.timeout(90):
                    result = await ops.result(
                        ALICE_IN_ACME, operation.id, result_type=BulkUserOperationResult
                    )
            assert result.succeeded == users
            assert await store.count(bulk_items, operation_id=operation.id) == len(users)
            history = await ops.client.get_workflow_handle(operation.id).fetch_history()
            started = [
                event.activity_task_started_event_attributes.attempt
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            ]
            assert started
            assert set(started) == {1}, "an activity was cut off by the stop and ran again"
    finally:
        print(log_path.read_text() if log_path.exists() else "(no worker log)")
