"""The file service's scenarios: uploads over HTTP (with the processing child workflow),
sharing and migration."""

from __future__ import annotations

import io
import uuid

from adx.histories.scenarios.fixtures import (
    OWNER,
    _bearer,
    _checked,
    _new_member,
    _unique,
)
from adx.histories.scenarios.registry import Recorded, _compensated, recorded, scenario
from adx.histories.stack import Harness
from contracts.context import RequestContext
from contracts.names import WorkflowType
from workflow_client.operations import new_operation_id


def _png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48))
    for x in range(0, 64, 4):
        for y in range(0, 48, 4):
            image.putpixel((x, y), (x * 4 % 256, y * 5 % 256, (x + y) % 256))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


async def _upload(
    h: Harness,
    context: RequestContext,
    data: bytes,
    name: str,
    content_type: str,
    *,
    fail: str | None = None,
) -> tuple[str, str]:
    """Uploads over HTTP (as a browser does); returns (operation id, file id)."""
    key = uuid.uuid4().hex
    if fail is not None:
        h.faults.fail(new_operation_id(WorkflowType.FILE_UPLOAD.value, context, key), fail)
    accepted = _checked(
        await h.http["file"].post(
            "/api/file/uploads",
            content=data,
            headers={
                **_bearer(h, context),
                "content-type": content_type,
                "x-filename": name,
                "idempotency-key": key,
            },
        ),
        202,
    )
    return str(accepted["operation_id"]), str(accepted["file_id"])


def _file_member(tenant_id: str) -> RequestContext:
    return RequestContext(user_id=_unique("uploader"), tenant_id=tenant_id, roles=OWNER)


@scenario(WorkflowType.FILE_UPLOAD, WorkflowType.FILE_PROCESSING, WorkflowType.GET_RECENT_FILES)
async def uploads(h: Harness) -> list[Recorded]:
    """An image: scanned, stored, processed by the child workflow (thumbnail), ready. Then a
    failure at the last step removes everything; a stored file reprocessed on its own; the
    uploader's recent files."""
    from contracts.file import FileActivity, FileProcessingInput, RecentFilesInput

    uploader = _file_member(_unique("files"))
    ok, file_id = await _upload(h, uploader, _png(), "picture.png", "image/png")
    await h.completes(uploader, ok)
    bad, _ = await _upload(
        h,
        uploader,
        b"some text\n" * 20,
        "notes.txt",
        "text/plain",
        fail=FileActivity.SET_FILE_STATUS,
    )
    failed = await h.fails(uploader, bad)
    _compensated(failed, "discard_staging")
    again, _ = await h.start(
        uploader, WorkflowType.FILE_PROCESSING, FileProcessingInput(file_id=file_id)
    )
    await h.completes(uploader, again)
    recent, _ = await h.start(uploader, WorkflowType.GET_RECENT_FILES, RecentFilesInput(limit=5))
    await h.completes(uploader, recent)
    return [
        *recorded(WorkflowType.FILE_UPLOAD, "success", ok),
        *recorded(WorkflowType.FILE_PROCESSING, "image-as-child-of-upload", f"{ok}-processing"),
        *recorded(WorkflowType.FILE_UPLOAD, "failure-compensated", bad),
        *recorded(WorkflowType.FILE_PROCESSING, "image-reprocessed", again),
        *recorded(WorkflowType.GET_RECENT_FILES, "success", recent),
    ]


@scenario(WorkflowType.FILE_SHARING)
async def sharing(h: Harness) -> list[Recorded]:
    """A file shared with an active member of the owner's tenant (granted, emailed); a failed
    email takes the grant back; another tenant's user is not found and gets nothing."""
    from contracts.errors import ErrorKind
    from contracts.file import FileActivity, FileSharingInput, SharePermission
    from services.file.components import components as file_components

    owner = _file_member(_unique("share"))
    upload_id, file_id = await _upload(h, owner, b"shared notes\n", "shared.txt", "text/plain")
    await h.completes(owner, upload_id)
    runs: list[Recorded] = []
    for path, fault in (
        ("success", None),
        ("failure-compensated", FileActivity.SEND_SHARE_NOTIFICATION),
    ):
        share = FileSharingInput(
            file_id=file_id,
            user_id=await _new_member(h, owner.tenant_id),
            permission=SharePermission.READ,
            notify_email="reader@histories.test",
        )
        workflow_id, _ = await h.start(owner, WorkflowType.FILE_SHARING, share, fail=fault)
        if fault is None:
            await h.completes(owner, workflow_id)
        else:
            failed = await h.fails(owner, workflow_id)
            _compensated(failed, "grant")
        runs += recorded(WorkflowType.FILE_SHARING, path, workflow_id)
    outsider = await _new_member(h, _unique("other"))
    share = FileSharingInput(
        file_id=file_id,
        user_id=outsider,
        permission=SharePermission.READ,
        notify_email="outsider@histories.test",
    )
    workflow_id, _ = await h.start(owner, WorkflowType.FILE_SHARING, share)
    failed = await h.fails(owner, workflow_id)
    if failed.kind is not ErrorKind.NOT_FOUND or failed.compensations:
        raise AssertionError(
            f"{workflow_id}: expected NOT_FOUND before any grant, got {failed.kind} "
            f"{failed.compensations} ({failed.message})"
        )
    parts = file_components(h.runtimes["file"])
    if await parts.store.permission_of(file_id, outsider) is not None:
        raise AssertionError(f"{workflow_id}: the outsider was granted a permission")
    if await parts.outbox.recent(to="outsider@histories.test"):
        raise AssertionError(f"{workflow_id}: the outsider was emailed")
    runs += recorded(WorkflowType.FILE_SHARING, "grantee-not-a-member", workflow_id)
    return runs


@scenario(WorkflowType.FILE_MIGRATION)
async def migration(h: Harness) -> list[Recorded]:
    """Two files of a tenant moved from the primary storage to the archive."""
    from contracts.file import FileMigrationInput

    admin = _file_member(_unique("migrate"))
    for index in range(2):
        upload_id, _ = await _upload(
            h, admin, f"file {index}\n".encode() * 10, f"f{index}.txt", "text/plain"
        )
        await h.completes(admin, upload_id)
    workflow_id, _ = await h.start(
        admin, WorkflowType.FILE_MIGRATION, FileMigrationInput(source="local", target="archive")
    )
    result = await h.completes(admin, workflow_id)
    assert result["migrated"] == 2, result
    return recorded(WorkflowType.FILE_MIGRATION, "success", workflow_id)
