"""A tenant's files moved between two real storage roots by ``file_migration``, with the
worker process killed (SIGKILL) mid-way: a new worker resumes, every file ends on the target
with the checksum it had, and nothing is left on the source."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from adx.settings import Settings
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.file import (
    FileMigrationInput,
    FileMigrationResult,
    FileStatus,
    Permission,
)
from contracts.names import WorkflowType
from contracts.progress import EventKind
from services.file.components import FileComponents, components
from services.file.config import FileSettings
from services.file.keys import file_key, thumbnail_key
from services.file.models import NewFile
from services.file.service import file_service
from tests.services.file.support import ADMIN_ROLES, member, new_tenant, tenant_blobs
from tests.support.servers import PostgresServer, create_database
from tests.support.services import running_service
from tests.support.worker_process import service_worker
from workflow_client.errors import TemporalUnavailable, WorkflowFailed

FILES = 8
FILE_BYTES = 128 * 1024
RATE = 256 * 1024  # half a second per file


async def add_file(parts: FileComponents, tenant_id: str, owner: str, data: bytes) -> str:
    file_id = str(uuid.uuid4())
    provider = parts.storage.get("local")
    key = file_key(tenant_id, file_id)
    async with provider.open_write(key) as writer:
        await writer.write(data)
    await parts.store.create_file(
        NewFile(
            id=file_id,
            tenant_id=tenant_id,
            owner_id=owner,
            name=f"{file_id[:8]}.bin",
            declared_content_type="application/octet-stream",
            content_type="application/octet-stream",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            provider="local",
            storage_key=key,
            status=FileStatus.READY,
        )
    )
    await parts.store.set_permission(tenant_id, file_id, owner, Permission.OWNER, owner)
    return file_id


async def test_migration_killed_midway_resumes_and_every_checksum_matches(
    settings: Settings, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    service_settings = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "database_url": create_database(postgres_server, f"file_{uuid.uuid4().hex[:12]}"),
        }
    )
    # What the worker process reads from the same settings.
    config = FileSettings.from_settings(service_settings)
    async with running_service(
        file_service(config), service_settings, worker=False, server=False
    ) as running:
        parts = components(running.runtime)
        ops = running.runtime.operations
        tenant = new_tenant("mig")
        boss = RequestContext(user_id="boss", tenant_id=tenant, roles=ADMIN_ROLES)
        originals: dict[str, str] = {}
        for _ in range(FILES):
            data = os.urandom(FILE_BYTES)
            file_id = await add_file(parts, tenant, boss.user_id, data)
            originals[file_id] = hashlib.sha256(data).hexdigest()
        # One file has a thumbnail, which moves with it.
        with_thumb = sorted(originals)[0]
        thumb = thumbnail_key(tenant, with_thumb)
        async with parts.storage.get("local").open_write(thumb) as writer:
            await writer.write(b"\x89PNG fake thumbnail")
        await parts.store.set_thumbnail(tenant, with_thumb, thumb)
        # Another tenant's file on the same provider is not touched.
        bystander = member(new_tenant("by"))
        other = await add_file(parts, bystander.tenant_id, bystander.user_id, b"not mine")

        async with service_worker("file", service_settings, tmp_path / "worker-1.log") as first:
            operation = await ops.start(
                boss,
                WorkflowType.FILE_MIGRATION.value,
                FileMigrationInput(source="local", target="archive", max_bytes_per_second=RATE),
            )
            async with asyncio.timeout(60):
                while True:
                    try:
                        snapshot = await ops.progress(boss, operation.id)
                    except TemporalUnavailable:
                        # The worker process is still starting: nothing answers queries yet.
                        await asyncio.sleep(0.2)
                        continue
                    if snapshot.report.progress.completed >= 2:
                        break
                    await asyncio.sleep(0.05)
            killed = await first.kill()
        assert killed == -signal.SIGKILL

        # Killed mid-way: some files moved, some not.
        on_archive, _ = await parts.store.count_on_provider(tenant, "archive")
        on_local, _ = await parts.store.count_on_provider(tenant, "local")
        assert 2 <= on_archive < FILES
        assert on_archive + on_local == FILES

        async with service_worker("file", service_settings, tmp_path / "worker-2.log"):
            async with asyncio.timeout(90):
                result = await ops.result(boss, operation.id, result_type=FileMigrationResult)
            final = await ops.progress(boss, operation.id)
            # Only a tenant admin migrates.
            refused = await ops.start(
                bystander,
                WorkflowType.FILE_MIGRATION.value,
                FileMigrationInput(source="local", target="archive"),
            )
            async with asyncio.timeout(60):
                with pytest.raises(WorkflowFailed) as failed:
                    await ops.result(bystander, refused.id)
        assert failed.value.kind is ErrorKind.AUTHORIZATION

        assert result.total == FILES
        assert result.migrated == FILES
        assert result.migrated_bytes == FILES * FILE_BYTES
        assert result.failed == []
        archive, local = parts.storage.get("archive"), parts.storage.get("local")
        for file_id, checksum in originals.items():
            record = await parts.store.find_file(file_id)
            assert record is not None
            assert record.provider == "archive"
            assert record.sha256 == checksum
            assert await archive.checksum(record.storage_key) == checksum
            assert not await local.exists(record.storage_key)
        assert await archive.exists(thumb)
        assert not await local.exists(thumb)
        # Exactly one blob per file (plus the thumbnail), all on the target, no partial copy.
        blobs = tenant_blobs(config, tenant)
        assert len(blobs) == FILES + 1
        assert all(path.is_relative_to(config.storage_root / "archive") for path in blobs)
        assert not any(path.name.endswith(".partial") for path in blobs)
        other_record = await parts.store.find_file(other)
        assert other_record is not None
        assert other_record.provider == "local"

        completed = [e for e in final.report.events if e.kind is EventKind.STEP_COMPLETED]
        # One event per file, each file once (the progress log is the workflow's own state).
        assert sorted(str(e.details["file_id"]) for e in completed) == sorted(originals)
        assert completed[-1].details["migrated"] == FILES
        assert final.report.progress.completed == FILES


async def test_a_file_whose_source_does_not_match_its_checksum_is_not_moved(
    settings: Settings, tmp_path: Path
) -> None:
    service_settings = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'file.sqlite'}",
        }
    )
    config = FileSettings.from_settings(service_settings)
    async with running_service(file_service(config), service_settings, server=False) as running:
        parts = components(running.runtime)
        tenant = new_tenant("rot")
        boss = RequestContext(user_id="boss", tenant_id=tenant, roles=ADMIN_ROLES)
        good = await add_file(parts, tenant, boss.user_id, os.urandom(5000))
        rotten = await add_file(parts, tenant, boss.user_id, os.urandom(5000))
        # Bit rot on the source: the bytes no longer match the checksum taken at upload.
        path = config.storage_root / "local" / file_key(tenant, rotten)
        path.write_bytes(b"X" + path.read_bytes()[1:])
        operation = await running.runtime.operations.start(
            boss,
            WorkflowType.FILE_MIGRATION.value,
            FileMigrationInput(source="local", target="archive"),
        )
        async with asyncio.timeout(60):
            result = await running.runtime.operations.result(
                boss, operation.id, result_type=FileMigrationResult
            )
        assert (result.total, result.migrated, result.failed) == (2, 1, [rotten])
        moved = await parts.store.find_file(good)
        kept = await parts.store.find_file(rotten)
        assert moved is not None
        assert kept is not None
        assert (moved.provider, kept.provider) == ("archive", "local")
        assert path.exists()
        assert not await parts.storage.get("archive").exists(file_key(tenant, rotten))
        snapshot = await running.runtime.operations.progress(boss, operation.id)
        failed = [e for e in snapshot.report.events if e.kind is EventKind.STEP_FAILED]
        assert [e.details["file_id"] for e in failed] == [rotten]
        assert failed[0].details["error"] == ErrorKind.INTERNAL.value
