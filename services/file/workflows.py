"""The file service's workflows. They pass storage references, never bytes, and call the
activities by name on the file task queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from contracts.context import RequestContext, current_context
    from contracts.errors import ErrorKind, error_kind
    from contracts.file import (
        BlobRef,
        CreateFileRecordInput,
        ExtractedMetadata,
        FileActivity,
        FileMigrationInput,
        FileMigrationResult,
        FileProcessingInput,
        FileProcessingResult,
        FileRef,
        FileSharingInput,
        FileSharingResult,
        FileStatus,
        FileSummary,
        FileUploadInput,
        FileUploadResult,
        MigrateFileInput,
        MigrateFileResult,
        MigrationBatch,
        MigrationBatchInput,
        MigrationPlan,
        MigrationPlanInput,
        Permission,
        PermissionChange,
        RecentFiles,
        RecentFilesInput,
        RestorePermissionInput,
        ScanResult,
        SetFileStatusInput,
        SetPermissionInput,
        ShareNotificationInput,
        ShareTarget,
        StoreBlobInput,
        ThumbnailResult,
        ValidatedUpload,
        ValidateUploadInput,
    )
    from contracts.names import QueryName, TaskQueue, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from contracts.user import (
        GetMembershipInput,
        MembershipState,
        MembershipStatus,
        UserActivity,
    )
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY
    from services.common.saga import Saga, root_cause
    from services.file.keys import file_key, thumbnail_key
    from services.file.sniff import is_image

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

T = TypeVar("T")

# file_sharing checks the grantee is an active member of the caller's tenant before granting;
# histories from before take the old path on replay
# (tests/histories/file_sharing/*-v1-before-grantee-check.json).
GRANTEE_CHECK_PATCH = "file-sharing-grantee-check"

QUICK = timedelta(seconds=30)
# Streaming steps (scan, store, migrate) read whole files: long limits, short heartbeats.
STREAMING = timedelta(hours=2)
HEARTBEAT = timedelta(seconds=30)
MIGRATION_HEARTBEAT = timedelta(seconds=5)
MIGRATION_BATCH = 100
# Dashboards would rather fail fast than wait for a long backoff.
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_attempts=3,
    non_retryable_error_types=DEFAULT_RETRY.non_retryable_error_types,
)


async def run_activity(
    name: FileActivity,
    arg: BaseModel,
    result_type: type[T],
    *,
    start_to_close: timedelta = QUICK,
    heartbeat: timedelta | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> T:
    result: T = await workflow.execute_activity(
        name.value,
        arg,
        task_queue=TaskQueue.FILE.value,
        start_to_close_timeout=start_to_close,
        heartbeat_timeout=heartbeat,
        retry_policy=retry,
        result_type=result_type,
    )
    return result


def undo(name: FileActivity, arg: BaseModel) -> Callable[[], Awaitable[object]]:
    """A compensation: the activity retried until it succeeds."""

    async def compensate() -> object:
        return await workflow.execute_activity(
            name.value,
            arg,
            task_queue=TaskQueue.FILE.value,
            start_to_close_timeout=QUICK,
            retry_policy=COMPENSATION_RETRY,
        )

    return compensate


def caller() -> RequestContext:
    context = current_context()
    if context is None:
        raise ApplicationError(
            "no caller identity", type=ErrorKind.AUTHENTICATION.value, non_retryable=True
        )
    return context


async def check_grantee(user_id: str) -> None:
    """Fails NOT_FOUND unless ``user_id`` is an active member of the caller's tenant; the
    user service owns the membership projection (its activity, on its queue). Another
    tenant's user is not found, like any other unknown id (tenant isolation)."""
    try:
        lookup = GetMembershipInput(user_id=user_id, tenant_id=caller().tenant_id)
    except ValidationError:
        lookup = None
    # An id no user can have (too long for a user id, or one the model would change, e.g.
    # by stripping spaces) names nobody; without this a bad id would fail the workflow task
    # over and over instead of the operation.
    if lookup is None or lookup.user_id != user_id:
        raise _user_not_found()
    state: MembershipState = await workflow.execute_activity(
        UserActivity.GET_MEMBERSHIP.value,
        lookup,
        task_queue=TaskQueue.USER.value,
        start_to_close_timeout=QUICK,
        retry_policy=DEFAULT_RETRY,
        result_type=MembershipState,
    )
    membership = state.membership
    if membership is None or membership.status is not MembershipStatus.ACTIVE:
        raise _user_not_found()


def _user_not_found() -> ApplicationError:
    return ApplicationError("user not found", type=ErrorKind.NOT_FOUND.value, non_retryable=True)


# Pinned: a saga over scans/copies of up to hours; ends where it began.
@workflow.defn(name=WorkflowType.FILE_UPLOAD.value, versioning_behavior=PINNED)
class FileUploadWorkflow:
    """validate -> scan -> create record -> store -> owner permission -> process -> ready.

    Any failure removes everything of the upload: the staged bytes, the stored blob and its
    thumbnail, and the record (with its permissions)."""

    def __init__(self) -> None:
        self._log = ProgressLog(total=7)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: FileUploadInput) -> FileUploadResult:
        self._log.record(EventKind.STARTED, file_id=input.file_id, name=input.name)
        context = caller()
        saga = Saga(self._log)
        stored = BlobRef(provider=input.provider, key=file_key(context.tenant_id, input.file_id))
        thumbnail = BlobRef(
            provider=input.provider, key=thumbnail_key(context.tenant_id, input.file_id)
        )
        file_ref = FileRef(file_id=input.file_id)
        # The staged bytes go whatever fails, from the first step on.
        saga.add_compensation("discard_staging", undo(FileActivity.DELETE_BLOB, input.staging))
        try:
            validated = await saga.step(
                "validate",
                lambda: run_activity(
                    FileActivity.VALIDATE_UPLOAD,
                    ValidateUploadInput(
                        file_id=input.file_id,
                        staging=input.staging,
                        size_bytes=input.size_bytes,
                        declared_content_type=input.declared_content_type,
                    ),
                    ValidatedUpload,
                ),
            )
            scan = await saga.step(
                "scan",
                lambda: run_activity(
                    FileActivity.SCAN_BLOB,
                    input.staging,
                    ScanResult,
                    start_to_close=STREAMING,
                    heartbeat=HEARTBEAT,
                ),
            )
            await saga.step(
                "create_record",
                lambda: run_activity(
                    FileActivity.CREATE_FILE_RECORD,
                    CreateFileRecordInput(
                        file_id=input.file_id,
                        name=input.name,
                        declared_content_type=input.declared_content_type,
                        content_type=validated.content_type,
                        size_bytes=input.size_bytes,
                        sha256=input.sha256,
                        blob=stored,
                    ),
                    FileSummary,
                ),
                undo(FileActivity.DELETE_FILE_RECORD, file_ref),
            )
            # Registered before the step: a store that fails half-way may have written.
            saga.add_compensation("delete_stored_blob", undo(FileActivity.DELETE_BLOB, stored))
            await saga.step(
                "store",
                lambda: run_activity(
                    FileActivity.STORE_BLOB,
                    StoreBlobInput(
                        source=input.staging,
                        target=stored,
                        size_bytes=input.size_bytes,
                        sha256=input.sha256,
                    ),
                    BlobRef,
                    start_to_close=STREAMING,
                    heartbeat=HEARTBEAT,
                ),
            )
            await saga.step(
                "set_permissions",
                lambda: run_activity(
                    FileActivity.SET_PERMISSION,
                    SetPermissionInput(
                        file_id=input.file_id,
                        user_id=context.user_id,
                        permission=Permission.OWNER,
                    ),
                    PermissionChange,
                ),
            )
            saga.add_compensation("delete_thumbnail", undo(FileActivity.DELETE_BLOB, thumbnail))
            processed = await saga.step(
                "process",
                lambda: workflow.execute_child_workflow(
                    WorkflowType.FILE_PROCESSING.value,
                    FileProcessingInput(file_id=input.file_id),
                    id=f"{workflow.info().workflow_id}-processing",
                    task_queue=TaskQueue.FILE.value,
                    result_type=FileProcessingResult,
                ),
            )
            await saga.step(
                "mark_ready",
                lambda: run_activity(
                    FileActivity.SET_FILE_STATUS,
                    SetFileStatusInput(file_id=input.file_id, status=FileStatus.READY),
                    FileSummary,
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        return FileUploadResult(
            file_id=input.file_id,
            status=FileStatus.READY,
            content_type=processed.content_type,
            size_bytes=input.size_bytes,
            sha256=input.sha256,
            scanned=scan.scanned,
            thumbnail=processed.thumbnail is not None,
        )


# Auto-upgrade: a quick run; as an upload's child it starts on the upload's build.
@workflow.defn(name=WorkflowType.FILE_PROCESSING.value, versioning_behavior=AUTO_UPGRADE)
class FileProcessingWorkflow:
    """The content type sniffed from the stored bytes, metadata, and a thumbnail for images.
    Runs as the upload's child, or on its own to reprocess a stored file."""

    def __init__(self) -> None:
        self._log = ProgressLog(total=2)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: FileProcessingInput) -> FileProcessingResult:
        self._log.record(EventKind.STARTED, file_id=input.file_id)
        caller()
        saga = Saga(self._log)
        file_ref = FileRef(file_id=input.file_id)
        try:
            extracted = await saga.step(
                "extract_metadata",
                lambda: run_activity(
                    FileActivity.EXTRACT_METADATA,
                    file_ref,
                    ExtractedMetadata,
                    start_to_close=STREAMING,
                    heartbeat=HEARTBEAT,
                ),
            )
            thumbnail = ThumbnailResult(reason="not an image")
            if is_image(extracted.content_type):
                thumbnail = await saga.step(
                    "thumbnail",
                    lambda: run_activity(
                        FileActivity.CREATE_THUMBNAIL,
                        file_ref,
                        ThumbnailResult,
                        start_to_close=STREAMING,
                        heartbeat=HEARTBEAT,
                    ),
                    undo(FileActivity.DELETE_THUMBNAIL, file_ref),
                )
            else:
                self._log.set_total(1)
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        return FileProcessingResult(
            file_id=input.file_id,
            content_type=extracted.content_type,
            metadata=extracted.metadata,
            thumbnail=thumbnail.thumbnail,
        )


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.FILE_SHARING.value, versioning_behavior=AUTO_UPGRADE)
class FileSharingWorkflow:
    """authorize -> check the grantee -> grant the permission -> notify by email; a failure
    takes the grant back.

    The grantee must be an active member of the caller's tenant (the user service's
    membership projection): anyone else, another tenant's user included, is "user not
    found" and gets nothing."""

    def __init__(self) -> None:
        self._log = ProgressLog(total=3)
        self._change: PermissionChange | None = None

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: FileSharingInput) -> FileSharingResult:
        self._log.record(EventKind.STARTED, file_id=input.file_id, user_id=input.user_id)
        caller()
        if input.notify_email is None:
            self._log.set_total(2)
        saga = Saga(self._log)
        notified = False
        try:
            target = await saga.step(
                "authorize",
                lambda: run_activity(FileActivity.AUTHORIZE_SHARE, input, ShareTarget),
            )
            # Patched in (CONTRIBUTING.md, "Patching: the procedure"): runs started before it
            # replay without the step.
            if workflow.patched(GRANTEE_CHECK_PATCH):
                self._log.set_total(self._log.progress.total + 1)
                await saga.step("check_grantee", lambda: check_grantee(input.user_id))
            await saga.step("grant", lambda: self._grant(input), self._revoke)
            if input.notify_email is not None:
                notified = await saga.step(
                    "notify",
                    lambda: run_activity(
                        FileActivity.SEND_SHARE_NOTIFICATION,
                        ShareNotificationInput(
                            file_id=input.file_id,
                            file_name=target.file_name,
                            user_id=input.user_id,
                            permission=input.permission,
                            email=input.notify_email or "",
                            idempotency_key=f"file-share:{workflow.info().workflow_id}",
                        ),
                        bool,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        return FileSharingResult(
            file_id=input.file_id,
            user_id=input.user_id,
            permission=input.permission,
            notified=notified,
        )

    async def _grant(self, input: FileSharingInput) -> PermissionChange:
        self._change = await run_activity(
            FileActivity.SET_PERMISSION,
            SetPermissionInput(
                file_id=input.file_id,
                user_id=input.user_id,
                permission=Permission(input.permission.value),
            ),
            PermissionChange,
        )
        return self._change

    async def _revoke(self) -> object:
        change = self._change
        if change is None:
            return None
        return await undo(
            FileActivity.RESTORE_PERMISSION,
            RestorePermissionInput(
                file_id=change.file_id, user_id=change.user_id, permission=change.previous
            ),
        )()


# Auto-upgrade: hours, continued-as-new in chunks; pinning would hold an old build that long.
@workflow.defn(name=WorkflowType.FILE_MIGRATION.value, versioning_behavior=AUTO_UPGRADE)
class FileMigrationWorkflow:
    """Moves every file of the caller's tenant from one provider to another, one file at a
    time (copy, verify the checksum, switch the record, delete the source), with a progress
    event per file. A worker killed mid-way leaves a file either not yet switched (copied
    again) or switched (its source cleaned up again): the new worker finishes the job."""

    def __init__(self) -> None:
        self._log = ProgressLog()

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: FileMigrationInput) -> FileMigrationResult:
        caller()
        total = input.total
        if total is None:
            plan = await run_activity(
                FileActivity.PLAN_MIGRATION,
                MigrationPlanInput(source=input.source, target=input.target),
                MigrationPlan,
            )
            total = plan.total
        self._log.set_total(total)
        self._log.progress.completed = input.migrated
        self._log.record(EventKind.STARTED, source=input.source, target=input.target, total=total)
        migrated, migrated_bytes = input.migrated, input.migrated_bytes
        failed = list(input.failed)
        cursor = input.after_file_id
        while True:
            batch = await run_activity(
                FileActivity.LIST_MIGRATION_BATCH,
                MigrationBatchInput(
                    source=input.source, after_file_id=cursor, limit=MIGRATION_BATCH
                ),
                MigrationBatch,
            )
            if not batch.file_ids:
                break
            for file_id in batch.file_ids:
                step = f"migrate:{file_id}"
                self._log.record(EventKind.STEP_STARTED, step)
                try:
                    moved = await run_activity(
                        FileActivity.MIGRATE_FILE,
                        MigrateFileInput(
                            file_id=file_id,
                            source=input.source,
                            target=input.target,
                            max_bytes_per_second=input.max_bytes_per_second,
                        ),
                        MigrateFileResult,
                        start_to_close=timedelta(hours=6),
                        heartbeat=MIGRATION_HEARTBEAT,
                    )
                except ActivityError as error:
                    if is_cancelled_exception(error):
                        raise
                    # One bad file (e.g. a corrupt source) does not stop the others.
                    cause = root_cause(error)
                    kind = error_kind(cause.type if isinstance(cause, ApplicationError) else None)
                    failed.append(file_id)
                    self._log.record(EventKind.STEP_FAILED, step, file_id=file_id, error=kind.value)
                    cursor = file_id
                    continue
                if moved.moved:
                    migrated += 1
                    migrated_bytes += moved.size_bytes
                cursor = file_id
                self._log.record(
                    EventKind.STEP_COMPLETED,
                    step,
                    file_id=file_id,
                    migrated=migrated,
                    total=total,
                    migrated_bytes=migrated_bytes,
                )
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    input.model_copy(
                        update={
                            "after_file_id": cursor,
                            "total": total,
                            "migrated": migrated,
                            "migrated_bytes": migrated_bytes,
                            "failed": failed,
                        }
                    )
                )
        return FileMigrationResult(
            source=input.source,
            target=input.target,
            total=total,
            migrated=migrated,
            migrated_bytes=migrated_bytes,
            failed=failed,
        )


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_RECENT_FILES.value, versioning_behavior=AUTO_UPGRADE)
class GetRecentFilesWorkflow:
    """A read workflow for dashboards: the caller's newest files, one quick activity."""

    def __init__(self) -> None:
        self._log = ProgressLog(total=1)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._log.report(request)

    @workflow.run
    async def run(self, input: RecentFilesInput | None = None) -> RecentFiles:
        self._log.record(EventKind.STARTED)
        caller()
        request = input or RecentFilesInput()
        self._log.record(EventKind.STEP_STARTED, "recent_files")
        result = await run_activity(
            FileActivity.RECENT_FILES,
            request,
            RecentFiles,
            start_to_close=timedelta(seconds=10),
            retry=READ_RETRY,
        )
        self._log.record(EventKind.STEP_COMPLETED, "recent_files")
        return result


WORKFLOWS: list[type[Any]] = [
    FileUploadWorkflow,
    FileProcessingWorkflow,
    FileSharingWorkflow,
    FileMigrationWorkflow,
    GetRecentFilesWorkflow,
]
