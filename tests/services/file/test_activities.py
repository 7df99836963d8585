"""Activity contracts called directly with a propagated identity (as other services' workflows
call them by name): idempotent on retry, and tenant-isolated."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.file import (
    BlobRef,
    CreateFileRecordInput,
    FileRef,
    MigrateFileInput,
    Permission,
    SetPermissionInput,
    StoreBlobInput,
    TenantQuotaInput,
    TenantRef,
)
from services.common.db import Database
from services.file.activities import FileActivities
from services.file.components import FileComponents
from services.file.config import FileSettings
from services.file.keys import file_key, staging_key
from services.file.service import SERVICE
from tests.services.file.support import admin, member, new_tenant


@pytest.fixture
async def parts(settings: Settings, tmp_path: Path) -> AsyncIterator[FileComponents]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'file.sqlite'}", "file")
    await db.migrate(SERVICE.migrations)
    try:
        yield FileComponents.build(db, settings, FileSettings(storage_root=tmp_path / "files"))
    finally:
        await db.dispose()


async def _staged(
    parts: FileComponents, context: RequestContext, data: bytes
) -> tuple[str, BlobRef]:
    file_id = str(uuid.uuid4())
    staging = BlobRef(provider="local", key=staging_key(context.tenant_id, file_id, "a"))
    async with parts.storage.get("local").open_write(staging.key) as writer:
        await writer.write(data)
    return file_id, staging


async def _record(
    acts: FileActivities, context: RequestContext, data: bytes, parts: FileComponents
) -> str:
    file_id, staging = await _staged(parts, context, data)
    target = BlobRef(provider="local", key=file_key(context.tenant_id, file_id))
    sha = hashlib.sha256(data).hexdigest()
    with use_context(context):
        await acts.create_file_record(
            CreateFileRecordInput(
                file_id=file_id,
                name="a.bin",
                declared_content_type="application/octet-stream",
                content_type="application/octet-stream",
                size_bytes=len(data),
                sha256=sha,
                blob=target,
            )
        )
        await acts.store_blob(
            StoreBlobInput(source=staging, target=target, size_bytes=len(data), sha256=sha)
        )
    return file_id


def _kind(error: pytest.ExceptionInfo[ApplicationError]) -> ErrorKind:
    return ErrorKind(error.value.type or "")


async def test_record_and_store_are_idempotent(parts: FileComponents) -> None:
    acts = parts.activities()
    owner = member(new_tenant())
    data = b"payload" * 1000
    file_id, staging = await _staged(parts, owner, data)
    target = BlobRef(provider="local", key=file_key(owner.tenant_id, file_id))
    sha = hashlib.sha256(data).hexdigest()
    record_input = CreateFileRecordInput(
        file_id=file_id,
        name="a.bin",
        declared_content_type="application/octet-stream",
        content_type="application/octet-stream",
        size_bytes=len(data),
        sha256=sha,
        blob=target,
    )
    store_input = StoreBlobInput(source=staging, target=target, size_bytes=len(data), sha256=sha)
    with use_context(owner):
        first = await acts.create_file_record(record_input)
        again = await acts.create_file_record(record_input)
        assert first == again
        assert await acts.store_blob(store_input) == target
        # A retry after the move: the stored blob is verified and kept.
        assert await acts.store_blob(store_input) == target
    local = parts.storage.get("local")
    assert await local.checksum(target.key) == sha
    assert not await local.exists(staging.key)
    files, _ = await parts.store.list_files(owner.tenant_id, "x", all_of_tenant=True, limit=5)
    assert [f.id for f in files] == [file_id]
    # A staged blob that does not match what the upload computed is refused and removed.
    bad_id, bad_staging = await _staged(parts, owner, b"tampered")
    bad_target = BlobRef(provider="local", key=file_key(owner.tenant_id, bad_id))
    with use_context(owner), pytest.raises(ApplicationError) as refused:
        await acts.store_blob(
            StoreBlobInput(source=bad_staging, target=bad_target, size_bytes=8, sha256=sha)
        )
    assert _kind(refused) is ErrorKind.VALIDATION
    assert not await local.exists(bad_target.key)


async def test_other_tenants_things_are_out_of_reach(parts: FileComponents) -> None:
    acts = parts.activities()
    owner = member(new_tenant("own"))
    file_id = await _record(acts, owner, b"mine", parts)
    blob = BlobRef(provider="local", key=file_key(owner.tenant_id, file_id))
    intruder = admin(new_tenant("intruder"))
    with use_context(intruder):
        for call in (
            acts.delete_blob(blob),
            acts.delete_file_record(FileRef(file_id=file_id)),
            acts.extract_metadata(FileRef(file_id=file_id)),
            acts.get_tenant_usage(TenantRef(tenant_id=owner.tenant_id)),
            acts.set_tenant_quota(TenantQuotaInput(tenant_id=owner.tenant_id, limit_bytes=1)),
            acts.set_permission(
                SetPermissionInput(
                    file_id=file_id, user_id=intruder.user_id, permission=Permission.READ
                )
            ),
        ):
            with pytest.raises(ApplicationError) as refused:
                await call
            assert _kind(refused) is ErrorKind.TENANT_ISOLATION
            assert refused.value.non_retryable
    assert await parts.storage.get("local").exists(blob.key)
    assert await parts.store.find_file(file_id) is not None
    assert await parts.store.permission_of(file_id, intruder.user_id) is None


async def test_quota_and_permission_rules(parts: FileComponents) -> None:
    acts = parts.activities()
    tenant = new_tenant("rules")
    boss, someone = admin(tenant), member(tenant)
    with use_context(boss):
        usage = await acts.set_tenant_quota(TenantQuotaInput(tenant_id=tenant, limit_bytes=5000))
        assert usage.limit_bytes == 5000
        assert (await acts.get_tenant_usage(TenantRef(tenant_id=tenant))).limit_bytes == 5000
    with use_context(someone), pytest.raises(ApplicationError) as refused:
        await acts.set_tenant_quota(TenantQuotaInput(tenant_id=tenant, limit_bytes=10**12))
    assert _kind(refused) is ErrorKind.AUTHORIZATION

    file_id = await _record(acts, boss, b"boss file", parts)
    with use_context(someone), pytest.raises(ApplicationError) as not_owner:
        await acts.set_permission(
            SetPermissionInput(
                file_id=file_id, user_id=someone.user_id, permission=Permission.WRITE
            )
        )
    assert _kind(not_owner) is ErrorKind.AUTHORIZATION
    with use_context(boss), pytest.raises(ApplicationError) as ownership:
        await acts.set_permission(
            SetPermissionInput(
                file_id=file_id, user_id=someone.user_id, permission=Permission.OWNER
            )
        )
    assert _kind(ownership) is ErrorKind.VALIDATION


async def test_migrating_a_file_already_switched_only_finishes_the_cleanup(
    parts: FileComponents,
) -> None:
    acts = parts.activities()
    boss = admin(new_tenant("mig"))
    data = b"moved already" * 100
    file_id = await _record(acts, boss, data, parts)
    key = file_key(boss.tenant_id, file_id)
    local, archive = parts.storage.get("local"), parts.storage.get("archive")
    # The state a worker killed between "switch the record" and "delete the source" leaves.
    async with archive.open_write(key) as writer:
        await writer.write(data)
    assert await parts.store.switch_provider(boss.tenant_id, file_id, "local", "archive")
    with use_context(boss):
        result = await acts.migrate_file(
            MigrateFileInput(file_id=file_id, source="local", target="archive")
        )
        assert result.moved
        assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert not await local.exists(key)
    assert await archive.checksum(key) == hashlib.sha256(data).hexdigest()
