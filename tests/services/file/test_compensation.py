"""Failures inside the upload workflow roll everything back: stand-in activities registered
under the real names on the real task queue make a step fail (Temporal's testing pattern);
everything else is the real service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.errors import ErrorKind
from contracts.file import (
    BlobRef,
    FileActivity,
    FileUploadResult,
    ScanResult,
    SetFileStatusInput,
    StoreBlobInput,
)
from contracts.names import TaskQueue
from contracts.operations import OperationStatus
from contracts.progress import EventKind
from services.file.components import components
from services.file.config import FileSettings
from services.file.service import file_service
from services.file.storage import copy_blob
from tests.services.file.support import FileHarness, member, new_tenant, png_bytes, tenant_blobs
from tests.support.services import running_service
from workflow_client.errors import WorkflowFailed
from workflow_client.worker import create_worker


def _name(fn: Callable[..., Any]) -> str | None:
    definition = activity._Definition.from_callable(fn)
    return definition.name if definition else None


@pytest.fixture
async def harness(settings: Settings, tmp_path: Any) -> AsyncIterator[FileHarness]:
    service_settings = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'file.sqlite'}",
        }
    )
    config = FileSettings(storage_root=tmp_path / "files")
    # The worker is started by each test, with its stand-ins.
    async with running_service(file_service(config), service_settings, worker=False) as running:
        yield FileHarness(running=running, settings=service_settings, config=config)


async def test_a_storage_failure_after_the_record_was_created_deletes_the_record(
    harness: FileHarness,
) -> None:
    parts = components(harness.running.runtime)
    real = parts.activities()
    seen: list[str] = []

    @activity.defn(name=FileActivity.STORE_BLOB)
    async def failing_store(input: StoreBlobInput) -> BlobRef:
        # The record exists by now; the bytes even reach their place before the "disk" fails.
        record = await parts.store.find_file(input.target.key.rsplit("/", 1)[-1])
        seen.append("record" if record is not None else "no record")
        source = parts.storage.get(input.source.provider)
        target = parts.storage.get(input.target.provider)
        await copy_blob(source, input.source.key, target, input.target.key)
        raise ApplicationError("storage backend failed", type="InternalError", non_retryable=True)

    activities = [fn for fn in real.all() if _name(fn) != FileActivity.STORE_BLOB]
    worker = create_worker(
        harness.running.runtime.client,
        task_queue=TaskQueue.FILE.value,
        workflows=file_service().workflows,
        activities=[*activities, failing_store],
    )
    owner = member(new_tenant("fail"))
    async with worker, harness.client() as http:
        response = await harness.upload(http, owner, png_bytes(64, 64), name="p.png")
        assert response.status_code == 202
        file_id = response.json()["file_id"]
        with pytest.raises(WorkflowFailed) as failed:
            await harness.result(owner, response.json()["operation_id"], FileUploadResult)
        snapshot = await harness.ops.progress(owner, response.json()["operation_id"])
    # The workflow's own error, its safe message hidden (an internal error).
    assert failed.value.kind is ErrorKind.INTERNAL
    assert failed.value.message == "internal error"
    assert failed.value.compensations == ["delete_stored_blob", "create_record", "discard_staging"]
    assert seen == ["record"]
    assert await parts.store.find_file(file_id) is None
    assert await parts.store.permission_of(file_id, owner.user_id) is None
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    assert (await parts.store.usage(owner.tenant_id)).used_bytes == 0
    kinds = [(e.kind, e.step) for e in snapshot.report.events]
    assert (EventKind.STEP_FAILED, "store") in kinds
    assert (EventKind.COMPENSATION_COMPLETED, "create_record") in kinds


async def test_a_processing_failure_removes_the_thumbnail_blob_and_record(
    harness: FileHarness,
) -> None:
    parts = components(harness.running.runtime)
    real = parts.activities()

    @activity.defn(name=FileActivity.SET_FILE_STATUS)
    async def failing_status(input: SetFileStatusInput) -> None:
        raise ApplicationError("database gone for good", type="InternalError", non_retryable=True)

    activities = [fn for fn in real.all() if _name(fn) != FileActivity.SET_FILE_STATUS]
    worker = create_worker(
        harness.running.runtime.client,
        task_queue=TaskQueue.FILE.value,
        workflows=file_service().workflows,
        activities=[*activities, failing_status],
    )
    owner = member(new_tenant("late"))
    async with worker, harness.client() as http:
        response = await harness.upload(http, owner, png_bytes(64, 64), name="p.png")
        file_id = response.json()["file_id"]
        with pytest.raises(WorkflowFailed) as failed:
            await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    assert failed.value.compensations == [
        "delete_thumbnail",
        "delete_stored_blob",
        "create_record",
        "discard_staging",
    ]
    assert await parts.store.find_file(file_id) is None
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    async with httpx.AsyncClient(base_url=harness.running.url) as http:
        gone = await http.get(f"/api/file/files/{file_id}", headers=harness.auth(owner))
    assert gone.status_code == 404


async def test_a_cancelled_upload_removes_what_it_staged(harness: FileHarness) -> None:
    parts = components(harness.running.runtime)
    scanning = asyncio.Event()

    @activity.defn(name=FileActivity.SCAN_BLOB)
    async def endless_scan(blob: BlobRef) -> ScanResult:
        scanning.set()
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.1)

    activities = [fn for fn in parts.activities().all() if _name(fn) != FileActivity.SCAN_BLOB]
    worker = create_worker(
        harness.running.runtime.client,
        task_queue=TaskQueue.FILE.value,
        workflows=file_service().workflows,
        activities=[*activities, endless_scan],
    )
    owner = member(new_tenant("cancel"))
    async with worker, harness.client() as http:
        response = await harness.upload(http, owner, b"to be cancelled\n", name="c.txt")
        operation_id = response.json()["operation_id"]
        await asyncio.wait_for(scanning.wait(), 20)
        assert len(tenant_blobs(harness.config, owner.tenant_id)) == 1
        await harness.ops.cancel(owner, operation_id, "changed my mind")
        with pytest.raises(WorkflowFailed) as failed:
            await harness.result(owner, operation_id, FileUploadResult)
        snapshot = await harness.ops.progress(owner, operation_id)
    assert failed.value.message == "the operation was cancelled"
    assert snapshot.operation.status is OperationStatus.CANCELED
    compensated = [
        e.step for e in snapshot.report.events if e.kind is EventKind.COMPENSATION_COMPLETED
    ]
    assert compensated == ["discard_staging"]
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    assert await parts.store.find_file(response.json()["file_id"]) is None
