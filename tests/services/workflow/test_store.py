"""The workflow service's store on SQLite and PostgreSQL: exports and erasure audit records,
every write idempotent; the migration creates exactly the tables the store declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from contracts.workflow import AuditRecord
from services.common.db import Database
from services.workflow.models import ExportRow
from services.workflow.service import SERVICE
from services.workflow.store import WorkflowStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[WorkflowStore]:
    db = Database(database_url, "workflow")
    await db.migrate(SERVICE.migrations)
    try:
        yield WorkflowStore(db)
    finally:
        await db.dispose()


def _audit(request_id: str = "erase-1") -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        subject="k1:abc",
        tenant_id="acme",
        requested_by="admin-1",
        reason=None,
        status="running",
        requested_at=datetime.now(UTC),
    )


async def test_an_export_is_recorded_once(store: WorkflowStore) -> None:
    row = ExportRow(
        request_id="export-1",
        user_id="u1",
        tenant_id="acme",
        file_name="export-1.zip",
        size_bytes=10,
        sha256="0" * 64,
        created_at=datetime.now(UTC),
    )
    assert await store.record_export(row) == row
    retried = await store.record_export(row.model_copy(update={"size_bytes": 99}))
    assert retried.size_bytes == 10
    assert [r.request_id for r in await store.exports_of("u1")] == ["export-1"]
    assert await store.get_export("nope") is None
    assert await store.delete_exports_of("u1") == 1
    assert await store.delete_exports_of("u1") == 0


async def test_the_audit_record_collects_counts_idempotently(store: WorkflowStore) -> None:
    first = await store.start_audit(_audit())
    again = await store.start_audit(_audit().model_copy(update={"requested_by": "someone"}))
    assert again.requested_by == first.requested_by == "admin-1"
    await store.record_erase_step("erase-1", "auth", {"auth_users": 1})
    await store.record_erase_step("erase-1", "user", {"user_profiles": 1})
    # A retried step that finds nothing left keeps the first pass's counts.
    await store.record_erase_step("erase-1", "auth", {"auth_users": 0})
    await store.record_erase_step("missing", "auth", {"auth_users": 1})
    await store.finish_audit("erase-1", "completed", datetime.now(UTC))
    await store.finish_audit("erase-1", "failed", datetime.now(UTC))  # already finished
    record = await store.get_audit("erase-1")
    assert record is not None
    assert record.services == {"auth": {"auth_users": 1}, "user": {"user_profiles": 1}}
    assert record.status == "completed"
    assert record.finished_at is not None
    assert await store.get_audit("missing") is None
    assert [r.request_id for r in await store.audits_in("acme")] == ["erase-1"]
    assert await store.audits_in("globex") == []
