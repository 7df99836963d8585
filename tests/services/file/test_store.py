"""The file store on SQLite and PostgreSQL (fresh, migrated databases)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable

import pytest
from temporalio.testing import ActivityEnvironment

from contracts.errors import ErrorKind
from contracts.file import FileStatus, Permission
from services.common.before import OperationUndone
from services.common.db import Database
from services.file.models import NewFile
from services.file.service import SERVICE
from services.file.store import FileStore, QuotaExceeded
from tests.support.operations import compensation, forward


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[FileStore]:
    db = Database(database_url, "file")
    await db.migrate(SERVICE.migrations)
    # Migrating twice is a no-op (server and worker both migrate on start).
    await db.migrate(SERVICE.migrations)
    try:
        yield FileStore(db, default_quota_bytes=10_000)
    finally:
        await db.dispose()


def new_file(tenant_id: str, owner_id: str = "owner", size: int = 100, **extra: object) -> NewFile:
    file_id = str(uuid.uuid4())
    values: dict[str, object] = {
        "id": file_id,
        "tenant_id": tenant_id,
        "owner_id": owner_id,
        "name": f"{file_id[:6]}.txt",
        "declared_content_type": "text/plain",
        "content_type": "text/plain",
        "size_bytes": size,
        "sha256": "0" * 64,
        "provider": "local",
        "storage_key": f"files/{tenant_id}/{file_id}",
        **extra,
    }
    return NewFile.model_validate(values)


async def test_create_is_idempotent_and_counts_towards_the_quota(store: FileStore) -> None:
    new = new_file("acme", size=4000, metadata={"charset": "utf-8"})
    first = await store.create_file(new)
    again = await store.create_file(new)
    assert first == again
    assert first.status is FileStatus.PROCESSING
    assert first.metadata == {"charset": "utf-8"}
    assert first.created_at.tzinfo is not None
    usage = await store.usage("acme")
    assert (usage.limit_bytes, usage.used_bytes, usage.available_bytes) == (10_000, 4000, 6000)
    await store.create_file(new_file("acme", size=6000))
    with pytest.raises(QuotaExceeded) as raised:
        await store.create_file(new_file("acme", size=1))
    assert raised.value.kind is ErrorKind.QUOTA_EXCEEDED
    # Another tenant's usage is its own.
    assert (await store.usage("globex")).used_bytes == 0
    await store.create_file(new_file("globex", size=10_000))


async def test_concurrent_creates_never_exceed_the_quota(store: FileStore) -> None:
    await store.set_quota("race", 1000)
    outcomes = await asyncio.gather(
        *(store.create_file(new_file("race", size=300)) for _ in range(6)),
        return_exceptions=True,
    )
    created = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(created) == 3
    assert len(refused) == 3
    assert (await store.usage("race")).used_bytes == 900


async def test_soft_delete_frees_the_quota_and_hides_the_file(store: FileStore) -> None:
    record = await store.create_file(new_file("acme", size=700))
    assert await store.get_file("acme", record.id) is not None
    deleted = await store.soft_delete("acme", record.id)
    assert deleted is not None
    assert deleted.status is FileStatus.DELETED
    assert deleted.deleted_at is not None
    assert await store.get_file("acme", record.id) is None
    assert await store.soft_delete("acme", record.id) is None
    assert (await store.usage("acme")).used_bytes == 0
    # The record stays for the audit trail.
    kept = await store.find_file(record.id)
    assert kept is not None
    assert kept.status is FileStatus.DELETED


async def test_queries_filter_by_tenant(store: FileStore) -> None:
    record = await store.create_file(new_file("acme"))
    await store.set_permission("acme", record.id, "owner", Permission.OWNER, "owner")
    assert await store.get_file("globex", record.id) is None
    assert await store.rename("globex", record.id, "stolen.txt") is None
    assert await store.soft_delete("globex", record.id) is None
    assert await store.delete_file("globex", record.id) is False
    assert await store.switch_provider("globex", record.id, "local", "archive") is False
    assert await store.permissions_of_file("globex", record.id) == []
    files, _ = await store.list_files("globex", "owner", all_of_tenant=True, limit=10)
    assert files == []
    still = await store.get_file("acme", record.id)
    assert still is not None
    assert still.name == record.name


async def test_listing_shows_what_the_user_may_see_newest_first(store: FileStore) -> None:
    owned = []
    for _ in range(5):
        record = await store.create_file(new_file("acme", owner_id="alice"))
        await store.set_permission("acme", record.id, "alice", Permission.OWNER, "alice")
        owned.append(record.id)
    other = await store.create_file(new_file("acme", owner_id="carol"))
    await store.set_permission("acme", other.id, "carol", Permission.OWNER, "carol")

    first, cursor = await store.list_files("acme", "alice", all_of_tenant=False, limit=2)
    assert cursor is not None
    second, cursor2 = await store.list_files(
        "acme", "alice", all_of_tenant=False, limit=2, cursor=cursor
    )
    third, cursor3 = await store.list_files(
        "acme", "alice", all_of_tenant=False, limit=2, cursor=cursor2
    )
    assert cursor3 is None
    seen = [r.id for r in first + second + third]
    assert sorted(seen) == sorted(owned)
    assert len(set(seen)) == 5
    stamps = [(r.created_at, r.id) for r in first + second + third]
    assert stamps == sorted(stamps, reverse=True)

    # Shared with alice: now she sees it too; an admin sees every file of the tenant.
    previous = await store.set_permission("acme", other.id, "alice", Permission.READ, "carol")
    assert previous is None
    visible, _ = await store.list_files("acme", "alice", all_of_tenant=False, limit=50)
    assert other.id in {r.id for r in visible}
    everything, _ = await store.list_files("acme", "anyone", all_of_tenant=True, limit=50)
    assert len(everything) == 6
    mine = await store.permissions_for("alice", [other.id, owned[0]])
    assert mine == {other.id: Permission.READ, owned[0]: Permission.OWNER}


async def test_permissions_change_and_restore(store: FileStore) -> None:
    record = await store.create_file(new_file("acme"))
    assert await store.set_permission("acme", record.id, "bob", Permission.READ, "o") is None
    assert (
        await store.set_permission("acme", record.id, "bob", Permission.WRITE, "o")
        is Permission.READ
    )
    assert await store.permission_of(record.id, "bob") is Permission.WRITE
    await store.remove_permission("acme", record.id, "bob")
    assert await store.permission_of(record.id, "bob") is None
    # Deleting the record (an upload's compensation) takes its permissions with it.
    await store.set_permission("acme", record.id, "bob", Permission.READ, "o")
    assert await store.delete_file("acme", record.id) is True
    assert await store.find_file(record.id) is None
    assert await store.permission_of(record.id, "bob") is None


async def test_a_repeated_grant_of_one_operation_hands_back_what_was_there_before_it(
    store: FileStore,
) -> None:
    """A grant that committed and lost its answer is run again (a worker killed, a timeout):
    the new attempt must still report "nothing before", or undoing the share would keep it."""
    record = await store.create_file(new_file("acme"))

    async def grant(permission: Permission) -> Permission | None:
        return await store.set_permission("acme", record.id, "bob", permission, "o")

    first, retried = ActivityEnvironment(), ActivityEnvironment()
    retried.info = dataclasses.replace(first.info, attempt=2)
    assert await first.run(grant, Permission.READ) is None
    assert await retried.run(grant, Permission.READ) is None
    # Another operation sees what this one left.
    other = ActivityEnvironment()
    other.info = dataclasses.replace(first.info, workflow_id="another-operation")
    assert await other.run(grant, Permission.WRITE) is Permission.READ
    assert await other.run(grant, Permission.WRITE) is Permission.READ
    assert await store.permission_of(record.id, "bob") is Permission.WRITE


async def test_provider_switch_and_migration_listing(store: FileStore) -> None:
    ids = sorted([(await store.create_file(new_file("acme", size=10))).id for _ in range(5)])
    assert await store.count_on_provider("acme", "local") == (5, 50)
    assert await store.ids_on_provider("acme", "local", None, 3) == ids[:3]
    assert await store.ids_on_provider("acme", "local", ids[2], 10) == ids[3:]
    assert await store.switch_provider("acme", ids[0], "local", "archive") is True
    # Only from the provider it is on: a repeated switch changes nothing.
    assert await store.switch_provider("acme", ids[0], "local", "archive") is False
    assert await store.count_on_provider("acme", "local") == (4, 40)
    assert await store.ids_on_provider("acme", "archive", None, 10) == [ids[0]]


async def test_quota_rows_and_processing_updates(store: FileStore) -> None:
    await store.ensure_quota("acme")
    await store.ensure_quota("acme")
    assert (await store.usage("acme")).limit_bytes == 10_000
    assert (await store.set_quota("acme", 50)).limit_bytes == 50
    record = await store.create_file(new_file("acme", size=50))
    await store.set_content("acme", record.id, "image/png", {"width": 4, "height": 2})
    await store.set_thumbnail("acme", record.id, f"thumbnails/acme/{record.id}.png")
    await store.set_status("acme", record.id, FileStatus.READY)
    updated = await store.get_file("acme", record.id)
    assert updated is not None
    assert (updated.content_type, updated.status) == ("image/png", FileStatus.READY)
    assert updated.metadata == {"width": 4, "height": 2}
    assert updated.thumbnail_key == f"thumbnails/acme/{record.id}.png"
    assert updated.summary().has_thumbnail


async def test_a_late_attempt_of_an_undone_share_makes_nothing(store: FileStore) -> None:
    """A share undone (its compensation removed the permission) stays undone when a late
    attempt of the share commits after it."""
    record = await store.create_file(new_file("acme"))

    def share() -> Awaitable[Permission | None]:
        return store.set_permission("acme", record.id, "bob", Permission.READ, "owner")

    assert await forward("share-1", share) is None
    await compensation("share-1", lambda: store.remove_permission("acme", record.id, "bob"))
    with pytest.raises(OperationUndone):
        await forward("share-1", share)
    assert await store.permission_of(record.id, "bob") is None
