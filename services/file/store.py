"""The file service's tables and the queries on them.

Every query the HTTP side makes filters by the caller's tenant. Activities look a file up by
id (``find_file``) and then check its tenant with ``ensure_tenant``, so a mismatch is logged as
a security event rather than looking like a missing row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    RowMapping,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from contracts.errors import ErrorKind
from contracts.file import FileStatus, Permission, QuotaUsage
from services.common.before import BeforeLog, before_table
from services.common.db import Database, rowcount
from services.common.email import outbox_table
from services.common.errors import ServiceError
from services.file.models import FileRecord, NewFile, PageCursor, PermissionRecord

metadata = MetaData()

files = Table(
    "file_files",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("owner_id", String(128), nullable=False),
    Column("name", String(255), nullable=False),
    Column("declared_content_type", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("storage_key", String(512), nullable=False),
    Column("thumbnail_key", String(512), nullable=True),
    Column("status", String(16), nullable=False),
    Column("details", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_file_files_tenant_created", "tenant_id", "created_at", "id"),
    Index("ix_file_files_tenant_provider", "tenant_id", "provider", "id"),
)

permissions = Table(
    "file_permissions",
    metadata,
    Column(
        "file_id",
        String(36),
        ForeignKey("file_files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", String(128), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("permission", String(16), nullable=False),
    Column("granted_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_file_permissions_tenant_user", "tenant_id", "user_id"),
)

tenant_quotas = Table(
    "file_tenant_quotas",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("limit_bytes", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

email_outbox = outbox_table(metadata, "file")
operation_before = before_table(metadata, "file")


class QuotaExceeded(ServiceError):
    def __init__(self, usage: QuotaUsage, size: int) -> None:
        super().__init__(
            ErrorKind.QUOTA_EXCEEDED,
            f"the tenant's storage quota is exceeded ({usage.used_bytes} of "
            f"{usage.limit_bytes} bytes used, {size} more requested)",
        )


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _record(row: RowMapping) -> FileRecord:
    return FileRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        owner_id=row["owner_id"],
        name=row["name"],
        declared_content_type=row["declared_content_type"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        provider=row["provider"],
        storage_key=row["storage_key"],
        thumbnail_key=row["thumbnail_key"],
        status=FileStatus(row["status"]),
        metadata=row["details"] or {},
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        deleted_at=_aware(row["deleted_at"]) if row["deleted_at"] is not None else None,
    )


def _permission(row: RowMapping) -> PermissionRecord:
    return PermissionRecord(
        file_id=row["file_id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        permission=Permission(row["permission"]),
        granted_by=row["granted_by"],
        created_at=_aware(row["created_at"]),
    )


class FileStore:
    def __init__(self, db: Database, default_quota_bytes: int) -> None:
        self.db = db
        self.default_quota_bytes = default_quota_bytes
        self.before = BeforeLog(db, operation_before)

    # Files -------------------------------------------------------------------------

    async def create_file(self, new: NewFile) -> FileRecord:
        """Inserts the record unless one with this id exists (a retried activity gets the
        existing one back). The quota is checked under the tenant's quota row lock, so two
        concurrent uploads cannot both squeeze into the last free bytes."""
        try:
            async with self.db.transaction() as session:
                found = await self._find(session, new.id)
                if found is not None:
                    return found
                usage = await self._usage(session, new.tenant_id, lock=True)
                if usage.used_bytes + new.size_bytes > usage.limit_bytes:
                    raise QuotaExceeded(usage, new.size_bytes)
                stamp = now()
                await session.execute(
                    files.insert().values(
                        **new.model_dump(exclude={"metadata"}),
                        details=new.metadata,
                        thumbnail_key=None,
                        created_at=stamp,
                        updated_at=stamp,
                        deleted_at=None,
                    )
                )
        except IntegrityError:
            # A concurrent attempt inserted it first.
            pass
        record = await self.find_file(new.id)
        assert record is not None
        return record

    async def find_file(self, file_id: str) -> FileRecord | None:
        """By id alone: for activities, which then check the tenant (ensure_tenant)."""
        async with self.db.transaction() as session:
            return await self._find(session, file_id)

    async def get_file(self, tenant_id: str, file_id: str) -> FileRecord | None:
        """A live (not deleted) file of the tenant."""
        query = select(files).where(
            files.c.id == file_id, files.c.tenant_id == tenant_id, files.c.deleted_at.is_(None)
        )
        async with self.db.transaction() as session:
            row = (await session.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    async def list_files(
        self,
        tenant_id: str,
        user_id: str,
        *,
        all_of_tenant: bool,
        limit: int,
        cursor: PageCursor | None = None,
    ) -> tuple[list[FileRecord], PageCursor | None]:
        """The tenant's live files the user may see, newest first, one page."""
        conditions = self._visible(tenant_id, user_id, all_of_tenant)
        if cursor is not None:
            conditions.append(
                or_(
                    files.c.created_at < cursor.created_at,
                    and_(files.c.created_at == cursor.created_at, files.c.id < cursor.id),
                )
            )
        query = (
            select(files)
            .where(*conditions)
            .order_by(files.c.created_at.desc(), files.c.id.desc())
            .limit(limit + 1)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        records = [_record(row) for row in rows[:limit]]
        following = None
        if len(rows) > limit:
            last = records[-1]
            following = PageCursor(created_at=last.created_at, id=last.id)
        return records, following

    async def rename(self, tenant_id: str, file_id: str, name: str) -> FileRecord | None:
        async with self.db.transaction() as session:
            await session.execute(
                update(files)
                .where(
                    files.c.id == file_id,
                    files.c.tenant_id == tenant_id,
                    files.c.deleted_at.is_(None),
                )
                .values(name=name, updated_at=now())
            )
        return await self.get_file(tenant_id, file_id)

    async def soft_delete(self, tenant_id: str, file_id: str) -> FileRecord | None:
        """Marks the file deleted (it stops counting towards the quota); the record stays."""
        stamp = now()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(files)
                .where(
                    files.c.id == file_id,
                    files.c.tenant_id == tenant_id,
                    files.c.deleted_at.is_(None),
                )
                .values(status=FileStatus.DELETED.value, deleted_at=stamp, updated_at=stamp)
            )
            if rowcount(result) == 0:
                return None
            return await self._find(session, file_id)

    async def delete_file(self, tenant_id: str, file_id: str) -> bool:
        """Removes the record and its permissions (an upload's compensation)."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(permissions).where(
                    permissions.c.file_id == file_id, permissions.c.tenant_id == tenant_id
                )
            )
            result = await session.execute(
                delete(files).where(files.c.id == file_id, files.c.tenant_id == tenant_id)
            )
            return rowcount(result) > 0

    async def set_status(self, tenant_id: str, file_id: str, status: FileStatus) -> None:
        await self._update(tenant_id, file_id, status=status.value)

    async def set_content(
        self, tenant_id: str, file_id: str, content_type: str, details: dict[str, Any]
    ) -> None:
        await self._update(tenant_id, file_id, content_type=content_type, details=details)

    async def set_thumbnail(self, tenant_id: str, file_id: str, key: str | None) -> None:
        await self._update(tenant_id, file_id, thumbnail_key=key)

    async def switch_provider(self, tenant_id: str, file_id: str, source: str, target: str) -> bool:
        """Points the record at the target provider if it still points at the source."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(files)
                .where(
                    files.c.id == file_id,
                    files.c.tenant_id == tenant_id,
                    files.c.provider == source,
                )
                .values(provider=target, updated_at=now())
            )
            return rowcount(result) > 0

    async def count_on_provider(self, tenant_id: str, provider: str) -> tuple[int, int]:
        """(files, bytes) of the tenant's live files on a provider."""
        query = select(func.count(), func.coalesce(func.sum(files.c.size_bytes), 0)).where(
            files.c.tenant_id == tenant_id,
            files.c.provider == provider,
            files.c.deleted_at.is_(None),
        )
        async with self.db.transaction() as session:
            count, total = (await session.execute(query)).one()
        return int(count), int(total)

    async def ids_on_provider(
        self, tenant_id: str, provider: str, after_id: str | None, limit: int
    ) -> list[str]:
        conditions: list[ColumnElement[bool]] = [
            files.c.tenant_id == tenant_id,
            files.c.provider == provider,
            files.c.deleted_at.is_(None),
        ]
        if after_id is not None:
            conditions.append(files.c.id > after_id)
        query = select(files.c.id).where(*conditions).order_by(files.c.id).limit(limit)
        async with self.db.transaction() as session:
            return [str(value) for value in (await session.execute(query)).scalars().all()]

    # Permissions -------------------------------------------------------------------

    async def permission_of(self, file_id: str, user_id: str) -> Permission | None:
        query = select(permissions.c.permission).where(
            permissions.c.file_id == file_id, permissions.c.user_id == user_id
        )
        async with self.db.transaction() as session:
            value = (await session.execute(query)).scalar_one_or_none()
        return Permission(value) if value is not None else None

    async def permissions_for(self, user_id: str, file_ids: list[str]) -> dict[str, Permission]:
        if not file_ids:
            return {}
        query = select(permissions.c.file_id, permissions.c.permission).where(
            permissions.c.user_id == user_id, permissions.c.file_id.in_(file_ids)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).all()
        return {str(file_id): Permission(value) for file_id, value in rows}

    async def set_permission(
        self, tenant_id: str, file_id: str, user_id: str, permission: Permission, granted_by: str
    ) -> Permission | None:
        """Grants (or changes) a permission; returns what the user had before the running
        operation first changed it (a retried attempt gets what its first attempt replaced)."""
        async with self.db.transaction() as session:
            current = (
                await session.execute(
                    select(permissions.c.permission).where(
                        permissions.c.file_id == file_id, permissions.c.user_id == user_id
                    )
                )
            ).scalar_one_or_none()
            previous = await self.before.first(session, f"permission:{file_id}:{user_id}", current)
            if current is None:
                await session.execute(
                    permissions.insert().values(
                        file_id=file_id,
                        user_id=user_id,
                        tenant_id=tenant_id,
                        permission=permission.value,
                        granted_by=granted_by,
                        created_at=now(),
                    )
                )
            elif current != permission.value:
                await session.execute(
                    update(permissions)
                    .where(permissions.c.file_id == file_id, permissions.c.user_id == user_id)
                    .values(permission=permission.value, granted_by=granted_by)
                )
        return Permission(previous) if previous is not None else None

    async def remove_permission(self, tenant_id: str, file_id: str, user_id: str) -> None:
        async with self.db.transaction() as session:
            await self.before.fence(session, f"permission:{file_id}:{user_id}")
            await session.execute(
                delete(permissions).where(
                    permissions.c.file_id == file_id,
                    permissions.c.user_id == user_id,
                    permissions.c.tenant_id == tenant_id,
                )
            )

    async def permissions_of_file(self, tenant_id: str, file_id: str) -> list[PermissionRecord]:
        query = (
            select(permissions)
            .where(permissions.c.file_id == file_id, permissions.c.tenant_id == tenant_id)
            .order_by(permissions.c.created_at, permissions.c.user_id)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_permission(row) for row in rows]

    # Quotas ------------------------------------------------------------------------

    async def usage(self, tenant_id: str) -> QuotaUsage:
        async with self.db.transaction() as session:
            return await self._usage(session, tenant_id, lock=False)

    async def set_quota(self, tenant_id: str, limit_bytes: int) -> QuotaUsage:
        async with self.db.transaction() as session:
            await self._ensure_quota_row(session, tenant_id)
            await session.execute(
                update(tenant_quotas)
                .where(tenant_quotas.c.tenant_id == tenant_id)
                .values(limit_bytes=limit_bytes, updated_at=now())
            )
            return await self._usage(session, tenant_id, lock=False)

    async def ensure_quota(self, tenant_id: str) -> None:
        async with self.db.transaction() as session:
            await self._ensure_quota_row(session, tenant_id)

    # Internals ---------------------------------------------------------------------

    @staticmethod
    def _visible(tenant_id: str, user_id: str, all_of_tenant: bool) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            files.c.tenant_id == tenant_id,
            files.c.deleted_at.is_(None),
        ]
        if not all_of_tenant:
            conditions.append(
                exists().where(
                    permissions.c.file_id == files.c.id,
                    permissions.c.user_id == user_id,
                    permissions.c.tenant_id == tenant_id,
                )
            )
        return conditions

    async def _find(self, session: AsyncSession, file_id: str) -> FileRecord | None:
        row = (await session.execute(select(files).where(files.c.id == file_id))).mappings().first()
        return _record(row) if row is not None else None

    async def _update(self, tenant_id: str, file_id: str, **values: Any) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(files)
                .where(files.c.id == file_id, files.c.tenant_id == tenant_id)
                .values(**values, updated_at=now())
            )

    async def _ensure_quota_row(self, session: AsyncSession, tenant_id: str) -> None:
        values = {
            "tenant_id": tenant_id,
            "limit_bytes": self.default_quota_bytes,
            "updated_at": now(),
        }
        await session.execute(
            self.db.insert(tenant_quotas).values(**values).on_conflict_do_nothing()
        )

    async def _usage(self, session: AsyncSession, tenant_id: str, *, lock: bool) -> QuotaUsage:
        limit_query = select(tenant_quotas.c.limit_bytes).where(
            tenant_quotas.c.tenant_id == tenant_id
        )
        if lock:
            # Serialises quota decisions per tenant (PostgreSQL; SQLite has one writer anyway).
            await self._ensure_quota_row(session, tenant_id)
            limit_query = limit_query.with_for_update()
        limit = (await session.execute(limit_query)).scalar_one_or_none()
        used = (
            await session.execute(
                select(func.coalesce(func.sum(files.c.size_bytes), 0)).where(
                    files.c.tenant_id == tenant_id, files.c.deleted_at.is_(None)
                )
            )
        ).scalar_one()
        return QuotaUsage(
            tenant_id=tenant_id,
            limit_bytes=int(limit) if limit is not None else self.default_quota_bytes,
            used_bytes=int(used),
        )
