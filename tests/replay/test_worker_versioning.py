"""Worker Versioning with two real worker processes of the tenant service (``adx service
tenant worker``), build A and build B of one Worker Deployment, on the session's dev server:
a pinned tenant_suspension started on A keeps running on A after B is made current (with
``set_current_version``, what ``adx deploy set-current`` calls), a new start runs on B, and
the first one finishes on A. A control run started on A with an auto-upgrade override
moves to B: the test tells the two behaviors apart."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.common import AutoUpgradeVersioningOverride

from adx.settings import Settings
from contracts.context import RequestContext, use_context
from contracts.names import SignalName, WorkflowType
from contracts.progress import EventKind
from contracts.tenant import (
    Plan,
    ResumeTenantSignal,
    SuspensionOutcome,
    TenantSuspensionInput,
    TenantSuspensionResult,
)
from services.common.service import open_runtime
from services.tenant.billing import terms
from services.tenant.service import SERVICE as TENANT
from services.tenant.store import TenantStore
from tests.support.worker_process import worker_env
from workflow_client.connect import connect
from workflow_client.operations import WorkflowOperations
from workflow_client.versioning import deployment_name, execution_version, set_current_version

OWNER = ("owner", "admin", "member")


@asynccontextmanager
async def tenant_worker(settings: Settings, build_id: str, folder: Path) -> AsyncIterator[int]:
    """``adx service tenant worker`` as build ``build_id``; yields its pid."""
    with (folder / f"worker-{build_id}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adx",
            "service",
            "tenant",
            "worker",
            env=worker_env(
                settings,
                ADX_WORKER_DEPLOYMENT_NAME=settings.worker_deployment_name,
                ADX_WORKER_BUILD_ID=build_id,
            ),
            cwd=folder,
            stdout=log,
            stderr=log,
        )
    try:
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _suspended(ops: WorkflowOperations, owner: RequestContext, operation_id: str) -> None:
    """Waits until the suspension waits for its resume (it ran its first tasks)."""
    async with asyncio.timeout(60):
        while True:
            snapshot = await ops.progress(owner, operation_id)
            if any(
                e.kind is EventKind.MESSAGE and e.step == "suspended"
                for e in snapshot.report.events
            ):
                return
            await asyncio.sleep(0.1)


async def _suspended_raw(client: Client, workflow_id: str) -> None:
    """Waits for the run's first workflow task to complete (it suspended the tenant)."""
    async with asyncio.timeout(60):
        while "build-a" not in await _task_builds(client, workflow_id):
            await asyncio.sleep(0.1)


async def _build_of(client: Client, workflow_id: str) -> str | None:
    version = execution_version(await client.get_workflow_handle(workflow_id).describe())
    return version.build_id if version else None


async def _task_builds(client: Client, workflow_id: str) -> set[str]:
    """The build of every worker that completed one of the run's workflow tasks."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }


async def test_a_pinned_workflow_stays_on_its_build_while_new_starts_go_to_the_new_one(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'tenant.sqlite'}",
            "worker_deployment_name": f"versioning-{uuid.uuid4().hex[:8]}",
        }
    )
    deployment = deployment_name(settings, "tenant")
    client = await connect(settings)
    # Migrated and seeded here, before any worker process opens the same database.
    runtime = await open_runtime(TENANT, settings, client=client)
    ops = runtime.operations
    tenants = TenantStore(runtime.db)
    owners: list[RequestContext] = []
    for _ in range(3):
        tenant_id = f"v-{uuid.uuid4().hex[:8]}"
        await tenants.seed(tenant_id, "Versioned", Plan.FREE, terms(Plan.FREE).quotas, {})
        owners.append(RequestContext(user_id="owner-1", tenant_id=tenant_id, roles=OWNER))
    first_owner, second_owner, control_owner = owners
    try:
        async with tenant_worker(settings, "build-a", tmp_path):
            await set_current_version(client, deployment, "build-a", wait_seconds=60)
            first = await ops.start(
                first_owner,
                WorkflowType.TENANT_SUSPENSION.value,
                TenantSuspensionInput(tenant_id=first_owner.tenant_id),
            )
            await _suspended(ops, first_owner, first.id)
            info = (await client.get_workflow_handle(first.id).describe()).raw_description
            versioning = info.workflow_execution_info.versioning_info
            assert versioning.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
            assert await _build_of(client, first.id) == "build-a"
            control = f"control-{uuid.uuid4().hex}"
            with use_context(control_owner):
                await client.start_workflow(
                    WorkflowType.TENANT_SUSPENSION.value,
                    TenantSuspensionInput(tenant_id=control_owner.tenant_id),
                    id=control,
                    task_queue=TENANT.task_queue.value,
                    versioning_override=AutoUpgradeVersioningOverride(),
                )
            await _suspended_raw(client, control)
            assert await _build_of(client, control) == "build-a"

            async with tenant_worker(settings, "build-b", tmp_path):
                await set_current_version(client, deployment, "build-b", wait_seconds=60)
                second = await ops.start(
                    second_owner,
                    WorkflowType.TENANT_SUSPENSION.value,
                    TenantSuspensionInput(tenant_id=second_owner.tenant_id),
                )
                await _suspended(ops, second_owner, second.id)
                assert await _build_of(client, second.id) == "build-b"
                # The running one did not move: it is pinned to the build it started on.
                assert await _build_of(client, first.id) == "build-a"

                runs = (
                    (first_owner, first.id),
                    (second_owner, second.id),
                    (control_owner, control),
                )
                for owner, operation_id in runs:
                    with use_context(owner):
                        await client.get_workflow_handle(operation_id).signal(
                            SignalName.RESUME_TENANT.value,
                            ResumeTenantSignal(requested_by=owner.user_id),
                        )
                async with asyncio.timeout(60):
                    done = [
                        await client.get_workflow_handle(
                            operation_id, result_type=TenantSuspensionResult
                        ).result()
                        for _, operation_id in runs
                    ]
        assert [result.outcome for result in done] == [SuspensionOutcome.RESUMED] * 3
        # Every workflow task of each run, the last ones (after B became current) included,
        # was completed by the build the run started on.
        assert await _task_builds(client, first.id) == {"build-a"}
        assert await _task_builds(client, second.id) == {"build-b"}
        # The control, auto-upgrade, began on A and finished on B.
        assert await _task_builds(client, control) == {"build-a", "build-b"}
    finally:
        # The task queue is shared with the rest of the session: hand it back to unversioned
        # workers, or later tests' workflows would wait for build B forever.
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace,
                deployment_name=deployment,
                build_id="",
                identity="versioning test",
                allow_no_pollers=True,
                ignore_missing_task_queues=True,
            )
        )
        await runtime.db.dispose()
