"""The file service's workflows. They pass storage references, never bytes, and call the
activities through the step kernel (services.common.steps) on the file task queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from contracts.errors import ErrorKind, error_kind
    from contracts.file import (
        BlobRef,
        CreateFileRecordInput,
        FileActivities,
        FileMigrationInput,
        FileMigrationResult,
        FileProcessingInput,
        FileProcessingResult,
        FileRef,
        FileSharingInput,
        FileSharingResult,
        FileStatus,
        FileUploadInput,
        FileUploadResult,
        MigrateFileInput,
        MigrationBatchInput,
        MigrationPlanInput,
        Permission,
        RecentFiles,
        RecentFilesInput,
        RestorePermissionInput,
        SetFileStatusInput,
        SetPermissionInput,
        ShareNotificationInput,
        StoreBlobInput,
        ThumbnailResult,
        ValidateUploadInput,
    )
    from contracts.names import TaskQueue, WorkflowType
    from contracts.progress import EventKind
    from contracts.user import GetMembershipInput, MembershipStatus, UserActivities
    from services.common.progress import ProgressLog
    from services.common.steps import (
        FORWARD,
        READ,
        CallOptions,
        ProgressWorkflow,
        Steps,
        caller,
        final,
        root_cause,
    )
    from services.file.keys import file_key, thumbnail_key
    from services.file.sniff import is_image

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

# file_sharing checks the grantee is an active member of the caller's tenant before granting;
# histories from before take the old path on replay
# (tests/histories/file_sharing/*-v1-before-grantee-check.json).
GRANTEE_CHECK_PATCH = "file-sharing-grantee-check"

# Streaming steps (scan, store, metadata, thumbnail, migrate) read whole files: long limits,
# short heartbeats.
STREAMING = timedelta(hours=2)
HEARTBEAT = timedelta(seconds=30)
STREAMING_STEP = CallOptions(STREAMING, FORWARD.retry, heartbeat=HEARTBEAT)
MIGRATION_STEP = CallOptions(timedelta(hours=6), FORWARD.retry, heartbeat=timedelta(seconds=5))
MIGRATION_BATCH = 100
# Dashboards would rather fail fast than wait for a long backoff.
RECENT_FILES_READ = READ.with_timeout(10)


async def check_grantee(steps: Steps, user_id: str) -> None:
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
        raise final(ErrorKind.NOT_FOUND, "user not found")
    state = await steps.read(UserActivities.GET_MEMBERSHIP, lookup, options=FORWARD)
    membership = state.membership
    if membership is None or membership.status is not MembershipStatus.ACTIVE:
        raise final(ErrorKind.NOT_FOUND, "user not found")


# Pinned: a saga over scans/copies of up to hours; ends where it began.
@workflow.defn(name=WorkflowType.FILE_UPLOAD.value, versioning_behavior=PINNED)
class FileUploadWorkflow(ProgressWorkflow):
    """validate -> scan -> create record -> store -> owner permission -> process -> ready.

    Any failure removes everything of the upload: the staged bytes, the stored blob and its
    thumbnail, and the record (with its permissions)."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=7)

    @workflow.run
    async def run(self, input: FileUploadInput) -> FileUploadResult:
        self._progress.record(EventKind.STARTED, file_id=input.file_id, name=input.name)
        context = caller()
        steps = Steps(self._progress)
        stored = BlobRef(provider=input.provider, key=file_key(context.tenant_id, input.file_id))
        thumbnail = BlobRef(
            provider=input.provider, key=thumbnail_key(context.tenant_id, input.file_id)
        )
        file_ref = FileRef(file_id=input.file_id)
        # The staged bytes go whatever fails, from the first step on.
        steps.add_compensation(
            "discard_staging", lambda: steps.undo(FileActivities.DELETE_BLOB, input.staging)
        )
        try:
            validated = await steps.step(
                "validate",
                lambda: steps.read(
                    FileActivities.VALIDATE_UPLOAD,
                    ValidateUploadInput(
                        file_id=input.file_id,
                        staging=input.staging,
                        size_bytes=input.size_bytes,
                        declared_content_type=input.declared_content_type,
                    ),
                    options=FORWARD,
                ),
            )
            # A call, not a read: an infected blob is deleted by the scan.
            scan = await steps.step(
                "scan",
                lambda: steps.call(FileActivities.SCAN_BLOB, input.staging, options=STREAMING_STEP),
            )
            await steps.step(
                "create_record",
                lambda: steps.call(
                    FileActivities.CREATE_FILE_RECORD,
                    CreateFileRecordInput(
                        file_id=input.file_id,
                        name=input.name,
                        declared_content_type=input.declared_content_type,
                        content_type=validated.content_type,
                        size_bytes=input.size_bytes,
                        sha256=input.sha256,
                        blob=stored,
                    ),
                ),
                lambda _: steps.undo(FileActivities.DELETE_FILE_RECORD, file_ref),
            )
            # Registered before the step: a store that fails half-way may have written.
            steps.add_compensation(
                "delete_stored_blob", lambda: steps.undo(FileActivities.DELETE_BLOB, stored)
            )
            await steps.step(
                "store",
                lambda: steps.call(
                    FileActivities.STORE_BLOB,
                    StoreBlobInput(
                        source=input.staging,
                        target=stored,
                        size_bytes=input.size_bytes,
                        sha256=input.sha256,
                    ),
                    options=STREAMING_STEP,
                ),
            )
            await steps.step(
                "set_permissions",
                lambda: steps.call(
                    FileActivities.SET_PERMISSION,
                    SetPermissionInput(
                        file_id=input.file_id,
                        user_id=context.user_id,
                        permission=Permission.OWNER,
                    ),
                ),
            )
            steps.add_compensation(
                "delete_thumbnail", lambda: steps.undo(FileActivities.DELETE_BLOB, thumbnail)
            )
            processed = await steps.step(
                "process",
                lambda: workflow.execute_child_workflow(
                    WorkflowType.FILE_PROCESSING.value,
                    FileProcessingInput(file_id=input.file_id),
                    id=f"{workflow.info().workflow_id}-processing",
                    task_queue=TaskQueue.FILE.value,
                    result_type=FileProcessingResult,
                ),
            )
            await steps.step(
                "mark_ready",
                lambda: steps.call(
                    FileActivities.SET_FILE_STATUS,
                    SetFileStatusInput(file_id=input.file_id, status=FileStatus.READY),
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
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
class FileProcessingWorkflow(ProgressWorkflow):
    """The content type sniffed from the stored bytes, metadata, and a thumbnail for images.
    Runs as the upload's child, or on its own to reprocess a stored file."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=2)

    @workflow.run
    async def run(self, input: FileProcessingInput) -> FileProcessingResult:
        self._progress.record(EventKind.STARTED, file_id=input.file_id)
        caller()
        steps = Steps(self._progress)
        file_ref = FileRef(file_id=input.file_id)
        try:
            # A call: the content type and metadata are written to the record.
            extracted = await steps.step(
                "extract_metadata",
                lambda: steps.call(
                    FileActivities.EXTRACT_METADATA, file_ref, options=STREAMING_STEP
                ),
            )
            thumbnail = ThumbnailResult(reason="not an image")
            if is_image(extracted.content_type):
                # Under an upload the thumbnail is new, and undone with it. A stored file
                # reprocessed on its own has its thumbnail already: it is rebuilt from the same
                # bytes in its place, so there is nothing to undo (deleting it would take the
                # file's thumbnail away).
                reprocess = workflow.info().parent is None
                thumbnail = await steps.step(
                    "thumbnail",
                    lambda: steps.call(
                        FileActivities.CREATE_THUMBNAIL, file_ref, options=STREAMING_STEP
                    ),
                    None
                    if reprocess
                    else lambda _: steps.undo(FileActivities.DELETE_THUMBNAIL, file_ref),
                )
            else:
                self._progress.set_total(1)
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return FileProcessingResult(
            file_id=input.file_id,
            content_type=extracted.content_type,
            metadata=extracted.metadata,
            thumbnail=thumbnail.thumbnail,
        )


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.FILE_SHARING.value, versioning_behavior=AUTO_UPGRADE)
class FileSharingWorkflow(ProgressWorkflow):
    """authorize -> check the grantee -> grant the permission -> notify by email; a failure
    takes the grant back.

    The grantee must be an active member of the caller's tenant (the user service's
    membership projection): anyone else, another tenant's user included, is "user not
    found" and gets nothing."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=3)

    @workflow.run
    async def run(self, input: FileSharingInput) -> FileSharingResult:
        self._progress.record(EventKind.STARTED, file_id=input.file_id, user_id=input.user_id)
        caller()
        if input.notify_email is None:
            self._progress.set_total(2)
        steps = Steps(self._progress)
        notified = False
        try:
            target = await steps.step(
                "authorize",
                lambda: steps.read(FileActivities.AUTHORIZE_SHARE, input, options=FORWARD),
            )
            # Patched in (CONTRIBUTING.md, "Patching: the procedure"): runs started before it
            # replay without the step.
            if workflow.patched(GRANTEE_CHECK_PATCH):
                self._progress.set_total(self._progress.progress.total + 1)
                await steps.step("check_grantee", lambda: check_grantee(steps, input.user_id))
            await steps.step(
                "grant",
                lambda: steps.call(
                    FileActivities.SET_PERMISSION,
                    SetPermissionInput(
                        file_id=input.file_id,
                        user_id=input.user_id,
                        permission=Permission(input.permission.value),
                    ),
                ),
                # Back to what the grantee had before (nothing: the permission is removed).
                lambda change: steps.undo(
                    FileActivities.RESTORE_PERMISSION,
                    RestorePermissionInput(
                        file_id=change.file_id, user_id=change.user_id, permission=change.previous
                    ),
                ),
            )
            if input.notify_email is not None:
                notified = await steps.step(
                    "notify",
                    lambda: steps.call(
                        FileActivities.SEND_SHARE_NOTIFICATION,
                        ShareNotificationInput(
                            file_id=input.file_id,
                            file_name=target.file_name,
                            user_id=input.user_id,
                            permission=input.permission,
                            email=input.notify_email or "",
                            idempotency_key=f"file-share:{workflow.info().workflow_id}",
                        ),
                    ),
                    # Once the person is told, the share stands.
                    pivot=True,
                )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return FileSharingResult(
            file_id=input.file_id,
            user_id=input.user_id,
            permission=input.permission,
            notified=notified,
        )


# Auto-upgrade: hours, continued-as-new in chunks; pinning would hold an old build that long.
@workflow.defn(name=WorkflowType.FILE_MIGRATION.value, versioning_behavior=AUTO_UPGRADE)
class FileMigrationWorkflow(ProgressWorkflow):
    """Moves every file of the caller's tenant from one provider to another, one file at a
    time (copy, verify the checksum, switch the record, delete the source), with a progress
    event per file. A worker killed mid-way leaves a file either not yet switched (copied
    again) or switched (its source cleaned up again): the new worker finishes the job."""

    def __init__(self) -> None:
        self._progress = ProgressLog()

    @workflow.run
    async def run(self, input: FileMigrationInput) -> FileMigrationResult:
        caller()
        # Activities only: the per-file progress events carry counts, so they are recorded
        # here rather than by Steps.step.
        steps = Steps(self._progress)
        total = input.total
        if total is None:
            plan = await steps.read(
                FileActivities.PLAN_MIGRATION,
                MigrationPlanInput(source=input.source, target=input.target),
                options=FORWARD,
            )
            total = plan.total
        self._progress.set_total(total)
        self._progress.progress.completed = input.migrated
        self._progress.record(
            EventKind.STARTED, source=input.source, target=input.target, total=total
        )
        migrated, migrated_bytes = input.migrated, input.migrated_bytes
        failed = list(input.failed)
        cursor = input.after_file_id
        while True:
            batch = await steps.read(
                FileActivities.LIST_MIGRATION_BATCH,
                MigrationBatchInput(
                    source=input.source, after_file_id=cursor, limit=MIGRATION_BATCH
                ),
                options=FORWARD,
            )
            if not batch.file_ids:
                break
            for file_id in batch.file_ids:
                step = f"migrate:{file_id}"
                self._progress.record(EventKind.STEP_STARTED, step)
                try:
                    moved = await steps.call(
                        FileActivities.MIGRATE_FILE,
                        MigrateFileInput(
                            file_id=file_id,
                            source=input.source,
                            target=input.target,
                            max_bytes_per_second=input.max_bytes_per_second,
                        ),
                        options=MIGRATION_STEP,
                    )
                except ActivityError as error:
                    if is_cancelled_exception(error):
                        raise
                    # One bad file (e.g. a corrupt source) does not stop the others.
                    cause = root_cause(error)
                    kind = error_kind(cause.type if isinstance(cause, ApplicationError) else None)
                    failed.append(file_id)
                    self._progress.record(
                        EventKind.STEP_FAILED, step, file_id=file_id, error=kind.value
                    )
                    cursor = file_id
                    continue
                if moved.moved:
                    migrated += 1
                    migrated_bytes += moved.size_bytes
                cursor = file_id
                self._progress.record(
                    EventKind.STEP_COMPLETED,
                    step,
                    file_id=file_id,
                    migrated=migrated,
                    total=total,
                    migrated_bytes=migrated_bytes,
                )
                # A cancel that came with this file's result stops the migration here.
                steps.raise_if_cancelled()
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
class GetRecentFilesWorkflow(ProgressWorkflow):
    """A read workflow for dashboards: the caller's newest files, one quick activity."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.run
    async def run(self, input: RecentFilesInput | None = None) -> RecentFiles:
        self._progress.record(EventKind.STARTED)
        caller()
        request = input or RecentFilesInput()
        steps = Steps(self._progress)
        return await steps.step(
            "recent_files",
            lambda: steps.read(FileActivities.RECENT_FILES, request, options=RECENT_FILES_READ),
        )


WORKFLOWS: list[type[Any]] = [
    FileUploadWorkflow,
    FileProcessingWorkflow,
    FileSharingWorkflow,
    FileMigrationWorkflow,
    GetRecentFilesWorkflow,
]
