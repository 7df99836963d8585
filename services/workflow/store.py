"""The workflow service's tables: the compliance exports (who may download which archive)
and the erasure audit records, which outlive the erasure they describe.

The audit record names the data subject only by a pseudonym (a keyed hash of the user id):
it proves the erasure happened without keeping the personal data it erased.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)

from contracts.workflow import AuditRecord
from services.common.db import Database, rowcount
from services.workflow.models import ExportRow

metadata = MetaData()

exports = Table(
    "workflow_exports",
    metadata,
    Column("request_id", String(255), primary_key=True),
    Column("user_id", String(64), nullable=False),
    # The tenant the export was requested in (monitoring filters by it).
    Column("tenant_id", String(64), nullable=False),
    Column("file_name", String(300), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_workflow_exports_user_id", "user_id"),
)

erase_audit = Table(
    "workflow_erase_audit",
    metadata,
    Column("request_id", String(255), primary_key=True),
    # Keyed hash of the erased user's id (never the id, email or name).
    Column("subject", String(200), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    # The admin who asked, or "data-subject" when the user asked for their own erasure.
    Column("requested_by", String(64), nullable=False),
    Column("reason", String(300), nullable=True),
    Column("status", String(16), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # service -> table -> rows erased
    Column("services", JSON, nullable=False),
    Index("ix_workflow_erase_audit_tenant", "tenant_id", "requested_at"),
)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _audit(row: Any) -> AuditRecord:
    return AuditRecord(
        request_id=row["request_id"],
        subject=row["subject"],
        tenant_id=row["tenant_id"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        status=row["status"],
        requested_at=utc(row["requested_at"]),
        finished_at=utc(row["finished_at"]) if row["finished_at"] else None,
        services=dict(row["services"] or {}),
    )


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Exports --------------------------------------------------------------------------

    async def record_export(self, row: ExportRow) -> ExportRow:
        """Insert-if-absent by request id (a retried activity records it once)."""
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(exports)
                .values(**row.model_dump())
                .on_conflict_do_nothing(index_elements=["request_id"])
            )
            found = (
                (
                    await session.execute(
                        select(exports).where(exports.c.request_id == row.request_id)
                    )
                )
                .mappings()
                .one()
            )
        return ExportRow.model_validate(dict(found))

    async def get_export(self, request_id: str) -> ExportRow | None:
        async with self.db.transaction() as session:
            found = (
                (await session.execute(select(exports).where(exports.c.request_id == request_id)))
                .mappings()
                .first()
            )
        return ExportRow.model_validate(dict(found)) if found else None

    async def exports_of(self, user_id: str, tenant_id: str | None = None) -> list[ExportRow]:
        """The user's exports (made in ``tenant_id``; None: in any tenant)."""
        async with self.db.transaction() as session:
            rows = (
                (await session.execute(select(exports).where(*_of(user_id, tenant_id))))
                .mappings()
                .all()
            )
        return [ExportRow.model_validate(dict(row)) for row in rows]

    async def delete_exports_of(self, user_id: str, tenant_id: str | None = None) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(delete(exports).where(*_of(user_id, tenant_id)))
        return rowcount(result)

    # Erasure audit --------------------------------------------------------------------

    async def start_audit(self, record: AuditRecord) -> AuditRecord:
        """Insert-if-absent by request id; the record as stored."""
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(erase_audit)
                .values(**record.model_dump(mode="python"))
                .on_conflict_do_nothing(index_elements=["request_id"])
            )
        found = await self.get_audit(record.request_id)
        assert found is not None
        return found

    async def get_audit(self, request_id: str) -> AuditRecord | None:
        found = await self.db.first(
            select(erase_audit).where(erase_audit.c.request_id == request_id)
        )
        return _audit(found) if found else None

    async def audits_in(self, tenant_id: str) -> list[AuditRecord]:
        rows = await self.db.all_rows(
            select(erase_audit)
            .where(erase_audit.c.tenant_id == tenant_id)
            .order_by(erase_audit.c.requested_at.desc())
        )
        return [_audit(row) for row in rows]

    async def record_erase_step(self, request_id: str, service: str, rows: dict[str, int]) -> None:
        """Sets one service's counts (a retry sets the same key again: no duplicate)."""
        async with self.db.transaction() as session:
            current = (
                await session.execute(
                    select(erase_audit.c.services).where(erase_audit.c.request_id == request_id)
                )
            ).scalar_one_or_none()
            if current is None:
                return
            services = dict(current)
            # A repeated erase finds nothing left: keep the counts of the first pass.
            if service in services and not any(rows.values()):
                return
            services[service] = rows
            await session.execute(
                update(erase_audit)
                .where(erase_audit.c.request_id == request_id)
                .values(services=services)
            )

    async def finish_audit(self, request_id: str, status: str, now: datetime) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(erase_audit)
                .where(erase_audit.c.request_id == request_id, erase_audit.c.finished_at.is_(None))
                .values(status=status, finished_at=now)
            )


def _of(user_id: str, tenant_id: str | None) -> list[Any]:
    """The user's exports, in one tenant or (None) in any."""
    conditions: list[Any] = [exports.c.user_id == user_id]
    if tenant_id is not None:
        conditions.append(exports.c.tenant_id == tenant_id)
    return conditions
