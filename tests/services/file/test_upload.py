"""The file service end to end: its worker on the real dev server, its API over real HTTP,
PostgreSQL, a real clamd and a real SMTP server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from PIL import Image

from adx.settings import Environment, Settings
from contracts.errors import ErrorKind
from contracts.file import (
    FileSharingResult,
    FileStatus,
    FileUploadResult,
    Permission,
    RecentFiles,
    RecentFilesInput,
)
from contracts.names import WorkflowType
from contracts.operations import OperationStatus
from contracts.progress import EventKind
from contracts.user import MembershipStatus
from services.common.dev_seed import TENANTS, seed_user_id
from services.file.config import FileSettings
from services.file.keys import file_key, thumbnail_key
from services.file.service import file_service, seed, seed_file_id
from tests.services.file.support import (
    FileHarness,
    admin,
    member,
    membership_stand_in,
    new_tenant,
    png_bytes,
    tenant_blobs,
)
from tests.support.clamd import EICAR, ClamdServer
from tests.support.servers import PostgresServer, create_database
from tests.support.services import running_service
from tests.support.smtp import Mailbox
from workflow_client.errors import WorkflowFailed

MAX_UPLOAD = 8 * 1024 * 1024


@pytest.fixture(scope="module")
async def harness(
    settings: Settings,
    postgres_server: PostgresServer,
    smtp_server: Mailbox,
    clamd: ClamdServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FileHarness]:
    data_dir = tmp_path_factory.mktemp("file-service")
    service_settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "database_url": create_database(postgres_server, f"file_{uuid.uuid4().hex[:12]}"),
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "public_url": "https://adx.example",
        }
    )
    config = FileSettings(
        storage_root=data_dir / "files",
        clamd_socket=clamd.socket_path,
        max_upload_bytes=MAX_UPLOAD,
        default_quota_bytes=64 * 1024 * 1024,
    )
    async with (
        running_service(file_service(config), service_settings) as running,
        membership_stand_in(running.runtime.client) as members,
    ):
        yield FileHarness(
            running=running, settings=service_settings, config=config, members=members
        )


@pytest.fixture
async def http(harness: FileHarness) -> AsyncIterator[httpx.AsyncClient]:
    async with harness.client() as client:
        yield client


async def test_an_image_is_scanned_stored_processed_and_listed(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("img"), "alice")
    data = png_bytes(640, 480)
    # The client's claim (octet-stream, .bin) is not what decides the type: the bytes are.
    response = await harness.upload(http, owner, data, name="holiday.bin")
    assert response.status_code == 202, response.text
    accepted = response.json()
    file_id = accepted["file_id"]
    assert accepted["operation_id"].startswith("file_upload-")

    result = await harness.result(owner, accepted["operation_id"], FileUploadResult)
    assert result.file_id == file_id
    assert result.status is FileStatus.READY
    assert result.scanned is True
    assert result.content_type == "image/png"
    assert result.thumbnail is True
    assert result.size_bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()

    record = await harness.parts.store.find_file(file_id)
    assert record is not None
    assert (record.status, record.content_type, record.declared_content_type) == (
        FileStatus.READY,
        "image/png",
        "application/octet-stream",
    )
    assert record.metadata["width"] == 640
    assert record.metadata["height"] == 480
    assert record.owner_id == owner.user_id
    assert record.tenant_id == owner.tenant_id
    stored = harness.config.storage_root / "local" / file_key(owner.tenant_id, file_id)
    assert stored.read_bytes() == data
    thumb_path = harness.config.storage_root / "local" / thumbnail_key(owner.tenant_id, file_id)
    # Exactly the blob and its thumbnail remain: the staged upload is gone.
    assert tenant_blobs(harness.config, owner.tenant_id) == sorted([stored, thumb_path])

    thumbnail = await http.get(f"/api/file/files/{file_id}/thumbnail", headers=harness.auth(owner))
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert image.format == "PNG"
        assert image.size == (256, 192)

    listing = await http.get("/api/file/files", headers=harness.auth(owner))
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [item["id"] for item in items] == [file_id]
    assert items[0]["status"] == "ready"
    assert items[0]["permission"] == "owner"
    assert items[0]["has_thumbnail"] is True
    assert items[0]["name"] == "holiday.bin"

    # The read workflow the BFF dashboard uses answers with the same file.
    outcome = await harness.ops.execute(
        owner,
        WorkflowType.GET_RECENT_FILES.value,
        RecentFilesInput(limit=5),
        budget=timedelta(seconds=20),
        result_type=RecentFiles,
    )
    assert outcome.result is not None
    assert [summary.id for summary in outcome.result.files] == [file_id]

    snapshot = await harness.ops.progress(owner, accepted["operation_id"])
    assert snapshot.operation.status is OperationStatus.COMPLETED
    completed = [e.step for e in snapshot.report.events if e.kind is EventKind.STEP_COMPLETED]
    assert completed == [
        "validate",
        "scan",
        "create_record",
        "store",
        "set_permissions",
        "process",
        "mark_ready",
    ]
    quota = await http.get("/api/file/quota", headers=harness.auth(owner))
    assert quota.json()["used_bytes"] == len(data)


async def test_download_streams_with_ranges_and_etags(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("dl"))
    data = bytes(range(256)) * 4096  # 1 MiB, binary
    response = await harness.upload(http, owner, data, name="r\u00e9sum\u00e9.dat")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    assert result.content_type == "application/octet-stream"
    url = f"/api/file/files/{result.file_id}/content"
    headers = harness.auth(owner)
    etag = f'"{hashlib.sha256(data).hexdigest()}"'

    full = await http.get(url, headers=headers)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["etag"] == etag
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-length"] == str(len(data))
    assert full.headers["x-content-type-options"] == "nosniff"
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.dat" in full.headers["content-disposition"]

    # A download resumed where it broke off reads back identical.
    first = await http.get(url, headers={**headers, "range": "bytes=0-400000"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-400000/{len(data)}"
    rest = await http.get(url, headers={**headers, "range": "bytes=400001-", "if-range": etag})
    assert rest.status_code == 206
    assert first.content + rest.content == data
    tail = await http.get(url, headers={**headers, "range": "bytes=-10"})
    assert tail.content == data[-10:]
    # If-Range with another version: the whole file.
    stale = await http.get(url, headers={**headers, "range": "bytes=0-9", "if-range": '"x"'})
    assert stale.status_code == 200
    assert len(stale.content) == len(data)

    beyond = await http.get(url, headers={**headers, "range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    cached = await http.get(url, headers={**headers, "if-none-match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    head = await http.head(url, headers=headers)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    # Not an image: no thumbnail.
    assert (
        await http.get(f"/api/file/files/{result.file_id}/thumbnail", headers=headers)
    ).status_code == 404


async def test_eicar_is_refused_and_nothing_of_it_remains(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("virus"))
    response = await harness.upload(http, owner, EICAR, name="eicar.com", content_type="text/plain")
    assert response.status_code == 202
    file_id = response.json()["file_id"]
    with pytest.raises(WorkflowFailed) as failed:
        await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    assert failed.value.kind is ErrorKind.VALIDATION
    assert failed.value.message == "file rejected: malware detected"
    assert failed.value.compensations == ["discard_staging"]
    assert await harness.parts.store.find_file(file_id) is None
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    assert (await harness.parts.store.usage(owner.tenant_id)).used_bytes == 0
    missing = await http.get(f"/api/file/files/{file_id}", headers=harness.auth(owner))
    assert missing.status_code == 404
    listing = await http.get("/api/file/files", headers=harness.auth(owner))
    assert listing.json()["items"] == []


async def test_an_executable_claiming_to_be_an_image_is_refused(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("elf"))
    elf = b"\x7fELF\x02\x01\x01\x00" + os.urandom(4000)
    response = await harness.upload(http, owner, elf, name="cat.png", content_type="image/png")
    file_id = response.json()["file_id"]
    with pytest.raises(WorkflowFailed) as failed:
        await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    assert failed.value.kind is ErrorKind.VALIDATION
    assert "application/x-executable" in failed.value.message
    assert await harness.parts.store.find_file(file_id) is None
    assert tenant_blobs(harness.config, owner.tenant_id) == []


async def test_quota_exceeded_is_refused_before_anything_is_stored(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("quota"))
    await harness.parts.store.set_quota(owner.tenant_id, 1000)

    # Size announced: refused before a byte is read.
    announced = await harness.upload(http, owner, os.urandom(5000), name="big.bin")
    assert announced.status_code == 409
    assert announced.headers["content-type"] == "application/problem+json"
    assert announced.json()["type"] == "urn:adx:problem:QuotaExceededError"
    assert tenant_blobs(harness.config, owner.tenant_id) == []

    # Size unknown (chunked): refused once counted, and the staged bytes are removed.
    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield os.urandom(1000)

    chunked = await http.post(
        "/api/file/uploads",
        content=body(),
        headers={**harness.auth(owner), "x-filename": "big.bin"},
    )
    assert chunked.status_code == 409
    assert tenant_blobs(harness.config, owner.tenant_id) == []

    fits = await harness.upload(http, owner, os.urandom(600), name="small.bin")
    assert fits.status_code == 202
    await harness.result(owner, fits.json()["operation_id"], FileUploadResult)
    # What is stored counts: 600 + 600 > 1000.
    second = await harness.upload(http, owner, os.urandom(600), name="second.bin")
    assert second.status_code == 409
    assert (await harness.parts.store.usage(owner.tenant_id)).used_bytes == 600
    assert len(tenant_blobs(harness.config, owner.tenant_id)) == 1


async def test_too_large_uploads_are_refused_while_streaming(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("large"))

    async def body() -> AsyncIterator[bytes]:
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield bytes(65536)

    streamed = await http.post(
        "/api/file/uploads",
        content=body(),
        headers={**harness.auth(owner), "x-filename": "huge.bin"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["type"] == "urn:adx:problem:PayloadTooLarge"
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    # An announced size over the limit is answered before the body is sent (a raw socket:
    # an HTTP client would insist on sending the whole body first).
    url = httpx.URL(harness.running.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in {
            **harness.auth(owner),
            "host": f"{url.host}:{url.port}",
            "x-filename": "huge.bin",
            "content-length": str(MAX_UPLOAD + 1),
        }.items()
    )
    writer.write(f"POST /api/file/uploads HTTP/1.1\r\n{head}\r\n".encode() + b"x" * 1000)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert tenant_blobs(harness.config, owner.tenant_id) == []


async def test_bad_upload_requests_change_nothing(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("bad"))
    no_token = await http.post("/api/file/uploads", content=b"x", headers={"x-filename": "a"})
    assert no_token.status_code == 401
    no_name = await http.post("/api/file/uploads", content=b"x", headers=harness.auth(owner))
    assert no_name.status_code == 422
    assert no_name.json()["errors"] == [{"field": "X-Filename", "message": "required"}]
    bad_name = await http.post(
        "/api/file/uploads", content=b"x", headers={**harness.auth(owner), "x-filename": "%00evil"}
    )
    assert bad_name.status_code == 422
    multipart = await http.post(
        "/api/file/uploads",
        files={"file": ("a.txt", b"hello")},
        headers={**harness.auth(owner), "x-filename": "a.txt"},
    )
    assert multipart.status_code == 415
    empty = await harness.upload(http, owner, b"", name="empty.txt")
    assert empty.status_code == 422
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    assert (
        await http.get("/api/file/files/not-a-uuid", headers=harness.auth(owner))
    ).status_code == 404
    bad_cursor = await http.get("/api/file/files?cursor=!!", headers=harness.auth(owner))
    assert bad_cursor.status_code == 422
    bad_limit = await http.get("/api/file/files?limit=0", headers=harness.auth(owner))
    assert bad_limit.status_code == 422


async def test_the_same_idempotency_key_uploads_once(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("idem"))
    data = b"the same report\n" * 100
    first = await harness.upload(http, owner, data, name="r.txt", idempotency_key="upload-1")
    second = await harness.upload(http, owner, data, name="r.txt", idempotency_key="upload-1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    await harness.result(owner, first.json()["operation_id"], FileUploadResult)
    third = await harness.upload(http, owner, data, name="r.txt", idempotency_key="upload-1")
    assert third.json() == first.json()
    files, _ = await harness.parts.store.list_files(
        owner.tenant_id, owner.user_id, all_of_tenant=True, limit=10
    )
    assert [record.id for record in files] == [first.json()["file_id"]]
    assert len(tenant_blobs(harness.config, owner.tenant_id)) == 1


async def test_another_tenants_file_is_not_found(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("iso"))
    response = await harness.upload(http, owner, png_bytes(32, 32), name="secret.png")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    base = f"/api/file/files/{result.file_id}"
    for outsider in (admin(new_tenant("other")), member(new_tenant("other"))):
        headers = harness.auth(outsider)
        for method, path in (
            ("GET", base),
            ("GET", f"{base}/content"),
            ("GET", f"{base}/thumbnail"),
            ("GET", f"{base}/shares"),
            ("DELETE", base),
        ):
            answer = await http.request(method, path, headers=headers)
            assert answer.status_code == 404, (method, path)
            assert answer.json()["detail"] == "file not found"
        renamed = await http.patch(base, json={"name": "mine.png"}, headers=headers)
        assert renamed.status_code == 404
        shared = await http.post(
            f"{base}/shares", json={"user_id": outsider.user_id}, headers=headers
        )
        assert shared.status_code == 404
        listing = await http.get("/api/file/files", headers=headers)
        assert listing.json()["items"] == []
    # Same tenant, not shared with: not found either; the tenant's admin sees it.
    colleague = member(owner.tenant_id, "colleague")
    assert (await http.get(base, headers=harness.auth(colleague))).status_code == 404
    boss = admin(owner.tenant_id, "boss")
    assert (await http.get(base, headers=harness.auth(boss))).status_code == 200
    record = await harness.parts.store.find_file(result.file_id)
    assert record is not None
    assert record.name == "secret.png"
    assert record.deleted_at is None


async def test_sharing_grants_access_and_notifies_once(
    harness: FileHarness, http: httpx.AsyncClient, smtp_server: Mailbox
) -> None:
    tenant = new_tenant("share")
    owner, reader = member(tenant, "owner"), member(tenant, "reader")
    harness.members.add(owner)
    harness.members.add(reader)
    response = await harness.upload(http, owner, b"quarterly numbers\n", name="q3.txt")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    base = f"/api/file/files/{result.file_id}"
    assert (await http.get(base, headers=harness.auth(reader))).status_code == 404
    # Only the owner shares.
    refused = await http.post(
        f"{base}/shares", json={"user_id": reader.user_id}, headers=harness.auth(reader)
    )
    assert refused.status_code == 404
    invalid = await http.post(
        f"{base}/shares",
        json={"user_id": reader.user_id, "permission": "owner"},
        headers=harness.auth(owner),
    )
    assert invalid.status_code == 422

    email = f"reader-{uuid.uuid4().hex[:8]}@example.test"
    shared = await http.post(
        f"{base}/shares",
        json={"user_id": reader.user_id, "permission": "read", "notify_email": email},
        headers=harness.auth(owner),
    )
    assert shared.status_code == 202, shared.text
    outcome = await harness.result(owner, shared.json()["operation_id"], FileSharingResult)
    assert outcome.notified is True
    snapshot = await harness.ops.progress(owner, shared.json()["operation_id"])
    assert [e.step for e in snapshot.report.events if e.kind is EventKind.STEP_COMPLETED] == [
        "authorize",
        "check_grantee",
        "grant",
        "notify",
    ]
    assert (snapshot.report.progress.completed, snapshot.report.progress.total) == (4, 4)
    messages = await smtp_server.wait_for(email)
    assert len(messages) == 1
    assert messages[0]["Subject"] == "A file was shared with you: q3.txt"
    assert f"https://adx.example/files/{result.file_id}" in messages[0].get_content()

    seen = await http.get(base, headers=harness.auth(reader))
    assert seen.status_code == 200
    assert seen.json()["permission"] == "read"
    content = await http.get(f"{base}/content", headers=harness.auth(reader))
    assert content.content == b"quarterly numbers\n"
    rename = await http.patch(base, json={"name": "x.txt"}, headers=harness.auth(reader))
    assert rename.status_code == 403
    delete = await http.delete(base, headers=harness.auth(reader))
    assert delete.status_code == 403
    shares = await http.get(f"{base}/shares", headers=harness.auth(owner))
    assert {(s["user_id"], s["permission"]) for s in shares.json()} == {
        (owner.user_id, "owner"),
        (reader.user_id, "read"),
    }
    assert (
        await harness.parts.store.permission_of(result.file_id, reader.user_id) is Permission.READ
    )
    assert len(await harness.parts.outbox.recent(to=email)) == 1

    # Sharing with the owner fails in the workflow and changes nothing.
    again = await http.post(
        f"{base}/shares", json={"user_id": owner.user_id}, headers=harness.auth(owner)
    )
    with pytest.raises(WorkflowFailed) as failed:
        await harness.result(owner, again.json()["operation_id"], FileSharingResult)
    assert failed.value.kind is ErrorKind.VALIDATION
    assert (
        await harness.parts.store.permission_of(result.file_id, owner.user_id) is Permission.OWNER
    )


@pytest.mark.parametrize("grantee", ["made-up", "too-long", "other-tenant", "suspended"])
async def test_sharing_with_anyone_but_an_active_member_is_not_found(
    harness: FileHarness, http: httpx.AsyncClient, smtp_server: Mailbox, grantee: str
) -> None:
    """Tenant isolation: a user who is not an active member of the caller's tenant (no such
    user, another tenant's user, a suspended or deactivated member) is "user not found"; the
    operation fails before any grant and nobody is emailed."""
    tenant = new_tenant("share")
    owner = member(tenant, "owner")
    harness.members.add(owner)
    if grantee == "made-up":
        target_id = member(tenant, "nobody").user_id
    elif grantee == "too-long":  # a valid share input, but longer than any user id
        target_id = "x" * 100
    elif grantee == "other-tenant":
        outsider = member(new_tenant("other"), "outsider")
        harness.members.add(outsider)
        target_id = outsider.user_id
    else:
        suspended = member(tenant, "suspended")
        harness.members.add(suspended, MembershipStatus.SUSPENDED)
        target_id = suspended.user_id
    response = await harness.upload(http, owner, b"private numbers\n", name="p.txt")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    email = f"{grantee}-{uuid.uuid4().hex[:8]}@example.test"
    shared = await http.post(
        f"/api/file/files/{result.file_id}/shares",
        json={"user_id": target_id, "permission": "write", "notify_email": email},
        headers=harness.auth(owner),
    )
    assert shared.status_code == 202, shared.text
    operation_id = shared.json()["operation_id"]
    with pytest.raises(WorkflowFailed) as failed:
        await harness.result(owner, operation_id, FileSharingResult)
    assert failed.value.kind is ErrorKind.NOT_FOUND
    assert failed.value.message == "user not found"
    assert failed.value.compensations == []  # nothing was granted to take back
    snapshot = await harness.ops.progress(owner, operation_id)
    assert snapshot.operation.status is OperationStatus.FAILED
    steps = [(e.kind, e.step) for e in snapshot.report.events if e.step is not None]
    assert (EventKind.STEP_FAILED, "check_grantee") in steps
    assert not any(step in ("grant", "notify") for _kind, step in steps)
    if grantee != "too-long":  # that one is refused without asking
        assert (target_id, tenant) in harness.members.asked
    assert await harness.parts.store.permission_of(result.file_id, target_id) is None
    shares = await http.get(f"/api/file/files/{result.file_id}/shares", headers=harness.auth(owner))
    assert [s["user_id"] for s in shares.json()] == [owner.user_id]
    assert await harness.parts.outbox.recent(to=email) == []
    assert smtp_server.to(email) == []


async def test_rename_and_delete(harness: FileHarness, http: httpx.AsyncClient) -> None:
    owner = member(new_tenant("crud"))
    response = await harness.upload(http, owner, png_bytes(20, 20), name="a.png")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    base = f"/api/file/files/{result.file_id}"
    headers = harness.auth(owner)
    renamed = await http.patch(base, json={"name": "folder/b.png"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "b.png"
    invalid = await http.patch(base, json={"name": "  "}, headers=headers)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "name"
    unknown = await http.patch(base, json={"name": "c.png", "owner": "x"}, headers=headers)
    assert unknown.status_code == 422
    assert len(tenant_blobs(harness.config, owner.tenant_id)) == 2  # blob + thumbnail

    deleted = await http.delete(base, headers=headers)
    assert deleted.status_code == 204
    assert (await http.get(base, headers=headers)).status_code == 404
    assert (await http.get(f"{base}/content", headers=headers)).status_code == 404
    assert tenant_blobs(harness.config, owner.tenant_id) == []
    assert (await harness.parts.store.usage(owner.tenant_id)).used_bytes == 0
    kept = await harness.parts.store.find_file(result.file_id)
    assert kept is not None
    assert kept.status is FileStatus.DELETED
    assert kept.name == "b.png"


async def test_reprocessing_and_migration_requests(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    owner = member(new_tenant("re"))
    response = await harness.upload(http, owner, png_bytes(300, 100), name="wide.png")
    result = await harness.result(owner, response.json()["operation_id"], FileUploadResult)
    thumb = harness.config.storage_root / "local" / thumbnail_key(owner.tenant_id, result.file_id)
    thumb.unlink()
    again = await http.post(
        f"/api/file/files/{result.file_id}/processing", headers=harness.auth(owner)
    )
    assert again.status_code == 202
    await harness.ops.result(owner, again.json()["operation_id"])
    with Image.open(thumb) as image:
        assert image.size == (256, 85)

    not_admin = await http.post(
        "/api/file/migrations",
        json={"source": "local", "target": "archive"},
        headers=harness.auth(owner),
    )
    assert not_admin.status_code == 403
    boss = admin(owner.tenant_id)
    unknown = await http.post(
        "/api/file/migrations", json={"source": "local", "target": "s3"}, headers=harness.auth(boss)
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "target"
    same = await http.post(
        "/api/file/migrations",
        json={"source": "local", "target": "local"},
        headers=harness.auth(boss),
    )
    assert same.status_code == 422


async def test_seeding_is_idempotent_and_dev_outbox_is_dev_only(
    harness: FileHarness, http: httpx.AsyncClient
) -> None:
    # The runtime seeded on start (test settings keep dev seeding on); seeding again adds nothing.
    await seed(harness.parts)
    for tenant in TENANTS:
        files, _ = await harness.parts.store.list_files(
            tenant.id, "nobody", all_of_tenant=True, limit=10
        )
        assert [record.id for record in files] == [seed_file_id(tenant.id)]
        owner = seed_user_id(tenant.owner_email)
        assert await harness.parts.store.permission_of(files[0].id, owner) is Permission.OWNER
        blob = harness.config.storage_root / "local" / file_key(tenant.id, files[0].id)
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == files[0].sha256

    assert (await http.get("/dev/outbox")).status_code == 404
    dev_settings = harness.settings.model_copy(update={"environment": Environment.DEV})
    async with (
        running_service(file_service(harness.config), dev_settings, worker=False) as dev,
        httpx.AsyncClient(base_url=dev.url) as dev_http,
    ):
        outbox = await dev_http.get("/dev/outbox")
        assert outbox.status_code == 200
        assert isinstance(outbox.json(), list)
