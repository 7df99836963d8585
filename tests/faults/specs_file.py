"""The file service's sagas: an upload (over HTTP, as a browser sends it: staged bytes, then
the workflow with its processing child), a share with an emailed notification, a stored file
reprocessed on its own, and a tenant's files migrated to another storage."""

from __future__ import annotations

import uuid
from typing import Any

from adx.histories import (
    Harness,
    _bearer,
    _checked,
    _file_member,
    _new_member,
    _png,
    _unique,
    _upload,
)
from contracts.file import (
    FileActivity,
    FileMigrationInput,
    FileMigrationResult,
    FileProcessingInput,
    FileProcessingResult,
    FileSharingInput,
    SharePermission,
)
from contracts.names import WorkflowType
from tests.faults.harness import Arm, Prepared, SagaSpec, SagaStep, mentions
from workflow_client.operations import new_operation_id

# Upload -------------------------------------------------------------------------------------


async def prepare_upload(h: Harness) -> Prepared:
    uploader = _file_member(_unique("files"))
    return Prepared(uploader, None, {"name": f"{_unique('p')}.png"})


async def upload(h: Harness, prepared: Prepared, key: str, arm: Arm) -> str:
    arm(new_operation_id(WorkflowType.FILE_UPLOAD.value, prepared.context, key))
    accepted = _checked(
        await h.http["file"].post(
            "/api/file/uploads",
            content=_png(),
            headers={
                **_bearer(h, prepared.context),
                "content-type": "image/png",
                "x-filename": prepared.facts["name"],
                "idempotency-key": key,
            },
        ),
        202,
    )
    prepared.facts["file_id"] = accepted["file_id"]
    return str(accepted["operation_id"])


async def uploaded(h: Harness, prepared: Prepared, result: Any) -> None:
    file_id = prepared.facts["file_id"]
    (record,) = await mentions(h, "file", "file_files", file_id)
    assert record["status"] == "ready"
    owner = prepared.context.user_id
    assert len(await mentions(h, "file", "file_permissions", file_id, owner, "owner")) == 1


UPLOAD = SagaSpec(
    workflow_type=WorkflowType.FILE_UPLOAD,
    steps=(
        SagaStep("validate", FileActivity.VALIDATE_UPLOAD, compensated=False, read=True),
        SagaStep("scan", FileActivity.SCAN_BLOB, compensated=False),
        SagaStep("create_record", FileActivity.CREATE_FILE_RECORD),
        SagaStep(
            "store",
            FileActivity.STORE_BLOB,
            compensated=False,
            registers_before=("delete_stored_blob",),
        ),
        SagaStep("set_permissions", FileActivity.SET_PERMISSION, compensated=False),
        # The processing child's first activity.
        SagaStep(
            "process",
            FileActivity.EXTRACT_METADATA,
            compensated=False,
            registers_before=("delete_thumbnail",),
        ),
        SagaStep("mark_ready", FileActivity.SET_FILE_STATUS, compensated=False),
    ),
    prepare=prepare_upload,
    applied=uploaded,
    start=upload,
    initial_compensations=("discard_staging",),
    # A tenant's quota row (its limit, not its usage) is made with its first upload.
    bookkeeping=frozenset({("file", "file_tenant_quotas")}),
)

# Sharing ------------------------------------------------------------------------------------


async def prepare_share(h: Harness) -> Prepared:
    owner = _file_member(_unique("share"))
    operation_id, file_id = await _upload(h, owner, b"shared notes\n", "shared.txt", "text/plain")
    await h.completes(owner, operation_id)
    grantee = await _new_member(h, owner.tenant_id)
    email = f"reader-{uuid.uuid4().hex[:8]}@faults.test"
    share = FileSharingInput(
        file_id=file_id, user_id=grantee, permission=SharePermission.READ, notify_email=email
    )
    return Prepared(owner, share, {"file_id": file_id, "grantee": grantee, "email": email})


async def shared(h: Harness, prepared: Prepared, result: Any) -> None:
    file_id, grantee = prepared.facts["file_id"], prepared.facts["grantee"]
    assert len(await mentions(h, "file", "file_permissions", file_id, grantee, "read")) == 1
    assert len(await mentions(h, "file", "file_email_outbox", prepared.facts["email"])) == 1


SHARING = SagaSpec(
    workflow_type=WorkflowType.FILE_SHARING,
    steps=(
        SagaStep("authorize", FileActivity.AUTHORIZE_SHARE, compensated=False, read=True),
        SagaStep("check_grantee", "user.get_membership", compensated=False, read=True),
        SagaStep("grant", FileActivity.SET_PERMISSION),
        SagaStep("notify", FileActivity.SEND_SHARE_NOTIFICATION, compensated=False),
    ),
    prepare=prepare_share,
    applied=shared,
    pivot="notify",
)

# Processing on its own (a stored image reprocessed) ---------------------------------------


async def prepare_processing(h: Harness) -> Prepared:
    owner = _file_member(_unique("reprocess"))
    operation_id, file_id = await _upload(h, owner, _png(), "again.png", "image/png")
    await h.completes(owner, operation_id)
    (record,) = await mentions(h, "file", "file_files", file_id)
    return Prepared(owner, FileProcessingInput(file_id=file_id), {"record": record})


async def reprocessed(h: Harness, prepared: Prepared, result: Any) -> None:
    before = prepared.facts["record"]
    processed = FileProcessingResult.model_validate(result)
    assert processed.content_type == "image/png"
    assert processed.thumbnail is not None
    assert processed.thumbnail.key == before["thumbnail_key"]
    (record,) = await mentions(h, "file", "file_files", before["id"])
    # The same bytes give the same record: content type, metadata and thumbnail.
    for column in ("status", "content_type", "details", "thumbnail_key"):
        assert record[column] == before[column], column


PROCESSING = SagaSpec(
    workflow_type=WorkflowType.FILE_PROCESSING,
    steps=(
        SagaStep("extract_metadata", FileActivity.EXTRACT_METADATA, compensated=False),
        # Rebuilt from the same bytes in its place: a reprocess has no thumbnail to undo.
        SagaStep("thumbnail", FileActivity.CREATE_THUMBNAIL, compensated=False),
    ),
    prepare=prepare_processing,
    applied=reprocessed,
)

# Migration ----------------------------------------------------------------------------------

MIGRATED_FILES = 2


async def prepare_migration(h: Harness) -> Prepared:
    admin = _file_member(_unique("migrate"))
    for index in range(MIGRATED_FILES):
        operation_id, _ = await _upload(
            h, admin, f"file {index}\n".encode() * 10, f"f{index}.txt", "text/plain"
        )
        await h.completes(admin, operation_id)
    move = FileMigrationInput(source="local", target="archive")
    return Prepared(admin, move, {"tenant_id": admin.tenant_id})


async def files_of(h: Harness, prepared: Prepared) -> list[dict[str, Any]]:
    return await mentions(h, "file", "file_files", f"'{prepared.facts['tenant_id']}'")


async def migrated(h: Harness, prepared: Prepared, result: Any) -> None:
    assert FileMigrationResult.model_validate(result).failed == []
    files = await files_of(h, prepared)
    assert len(files) == MIGRATED_FILES
    assert {record["provider"] for record in files} == {"archive"}


async def one_file_reported(h: Harness, prepared: Prepared, result: Any) -> None:
    outcome = FileMigrationResult.model_validate(result)
    (failed,) = outcome.failed
    assert outcome.migrated == MIGRATED_FILES - 1
    for record in await files_of(h, prepared):
        assert record["provider"] == ("local" if record["id"] == failed else "archive")


MIGRATION = SagaSpec(
    workflow_type=WorkflowType.FILE_MIGRATION,
    steps=(
        SagaStep("plan", FileActivity.PLAN_MIGRATION, compensated=False, read=True),
        SagaStep("list_batch", FileActivity.LIST_MIGRATION_BATCH, compensated=False, read=True),
        SagaStep("migrate_1", FileActivity.MIGRATE_FILE, compensated=False, item=True),
        SagaStep("migrate_2", FileActivity.MIGRATE_FILE, compensated=False, nth=2, item=True),
        SagaStep(
            "list_batch_end",
            FileActivity.LIST_MIGRATION_BATCH,
            compensated=False,
            read=True,
            nth=2,
        ),
    ),
    prepare=prepare_migration,
    applied=migrated,
    # Each file is moved on its own (copy, verify, switch, clean up; each repeatable): a
    # cancel stops the rest, a file that fails is reported; the request made again moves
    # what is left.
    resumable=True,
    reported=one_file_reported,
)

SPECS = (UPLOAD, SHARING, PROCESSING, MIGRATION)
