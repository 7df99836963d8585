"""The workflow service's own activities: writing a compliance export archive, the erasure
audit record, and erasing what this service itself holds about a user (their exports).

Idempotent like every activity: rows are keyed by the request (the workflow id) and written
insert-if-absent; the archive is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adx.settings import Settings
from contracts.errors import ErrorKind
from contracts.workflow import (
    AuditRecord,
    EraseAuditInput,
    ExportArchive,
    FinishAuditInput,
    StartAuditInput,
    UserDataErased,
    UserDataRequest,
    WorkflowActivity,
    WriteArchiveInput,
)
from services.common.activity import service_activity
from services.common.errors import ServiceError, data_subject_scope, require_context
from services.workflow.models import ExportRow
from services.workflow.store import WorkflowStore
from workflow_client.codec import KeyRing

SELF_REQUESTED = "data-subject"


def exports_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


def archive_name(request_id: str) -> str:
    """A file name from the request id (operation ids are [A-Za-z0-9:_.-]; keep it flat)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in request_id)
    return f"{safe}.zip"


def pseudonym(settings: Settings, user_id: str) -> str:
    """A keyed hash of the user id: the same user gives the same value (audits can be matched
    to a later request about the same id), but it cannot be turned back into the id."""
    ring = KeyRing.from_settings(settings)
    key = ring.keys[ring.active_key_id]
    digest = hmac.new(key, f"erase-subject|{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{ring.active_key_id}:{digest}"


def build_archive(input: WriteArchiveInput) -> bytes:
    """One zip: a manifest plus one JSON document per service. Deterministic bytes for the
    same parts (fixed timestamps), so a retry writes the same file."""
    buffer = io.BytesIO()
    manifest = {
        "request_id": input.request_id,
        "user_id": input.user_id,
        "services": sorted(part.service for part in input.parts),
    }
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("manifest.json", manifest)] + [
            (f"{part.service}.json", part.model_dump(mode="json")) for part in input.parts
        ]
        for name, document in entries:
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, json.dumps(document, indent=2, sort_keys=True, default=str))
    return buffer.getvalue()


class WorkflowActivities:
    def __init__(self, store: WorkflowStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.write_export_archive,
            self.start_erase_audit,
            self.record_erase_step,
            self.finish_erase_audit,
            self.erase_user_data,
        ]

    # Export ---------------------------------------------------------------------------

    @service_activity(WorkflowActivity.WRITE_EXPORT_ARCHIVE)
    async def write_export_archive(self, input: WriteArchiveInput) -> ExportArchive:
        """Writes ``<data_dir>/exports/<request>.zip`` and records who may download it."""
        require_context()
        if any(part.user_id != input.user_id for part in input.parts):
            raise ServiceError(ErrorKind.VALIDATION, "the parts are about another user")
        data = build_archive(input)
        folder = exports_dir(self.settings)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = archive_name(input.request_id)
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(data)
        os.chmod(temporary, 0o600)
        temporary.replace(folder / name)
        row = await self.store.record_export(
            ExportRow(
                request_id=input.request_id,
                user_id=input.user_id,
                tenant_id=input.tenant_id,
                file_name=name,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                created_at=datetime.now(UTC),
            )
        )
        return ExportArchive(
            request_id=row.request_id,
            user_id=row.user_id,
            path_name=row.file_name,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            counts={
                part.service: {table: len(rows) for table, rows in part.records.items()}
                for part in input.parts
            },
        )

    # Erasure audit --------------------------------------------------------------------

    @service_activity(WorkflowActivity.START_ERASE_AUDIT)
    async def start_erase_audit(self, input: StartAuditInput) -> AuditRecord:
        context = require_context()
        requested_by = SELF_REQUESTED if context.user_id == input.user_id else context.user_id
        return await self.store.start_audit(
            AuditRecord(
                request_id=input.request_id,
                subject=pseudonym(self.settings, input.user_id),
                tenant_id=input.tenant_id,
                requested_by=requested_by,
                reason=input.reason,
                status="running",
                requested_at=datetime.now(UTC),
            )
        )

    @service_activity(WorkflowActivity.RECORD_ERASE_STEP)
    async def record_erase_step(self, input: EraseAuditInput) -> None:
        require_context()
        await self.store.record_erase_step(
            input.request_id, input.result.service, input.result.rows
        )

    @service_activity(WorkflowActivity.FINISH_ERASE_AUDIT)
    async def finish_erase_audit(self, input: FinishAuditInput) -> AuditRecord:
        require_context()
        await self.store.finish_audit(input.request_id, input.status, datetime.now(UTC))
        found = await self.store.get_audit(input.request_id)
        if found is None:
            raise ServiceError(ErrorKind.NOT_FOUND, "audit record not found")
        return found

    @service_activity(WorkflowActivity.ERASE_USER_DATA)
    async def erase_user_data(self, input: UserDataRequest) -> UserDataErased:
        """This service's own data about the user: their export archives and records (a
        tenant admin's request: those made in that tenant)."""
        scope = data_subject_scope(input.user_id)
        folder = exports_dir(self.settings)
        files = 0
        for row in await self.store.exports_of(input.user_id, scope):
            path = folder / row.file_name
            if path.exists():
                path.unlink()
                files += 1
        rows = await self.store.delete_exports_of(input.user_id, scope)
        return UserDataErased(
            service="workflow",
            user_id=input.user_id,
            rows={"workflow_exports": rows, "export files": files},
        )
