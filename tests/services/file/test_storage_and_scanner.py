"""The pieces under the workflows, on real disks and a real clamd: the local storage
provider, the ClamAV scanner (INSTREAM), content sniffing, Range parsing, start-up checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from adx.settings import Environment, Settings
from contracts.errors import ErrorKind
from services.common.db import Database
from services.common.errors import ServiceError
from services.file.api import _Unsatisfiable, content_disposition, parse_range
from services.file.components import FileComponents
from services.file.config import FileSettings
from services.file.keys import file_key, staging_key, tenant_segment
from services.file.models import clean_file_name
from services.file.scanner import ClamdScanner, ScannerUnavailable
from services.file.service import check_scanner
from services.file.sniff import sniff
from services.file.storage import LocalFileStorage, StorageRegistry, Throttle, copy_blob
from tests.services.file.support import png_bytes
from tests.support.clamd import EICAR, EICAR_SIGNATURE, ClamdServer


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def _read_all(
    provider: LocalFileStorage, key: str, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in provider.read(key, start, end)])


# Storage ------------------------------------------------------------------------------


async def test_local_storage_writes_reads_ranges_and_checksums(tmp_path: Path) -> None:
    storage = LocalFileStorage("local", tmp_path / "root", chunk_bytes=4096)
    data = os.urandom(50_000)
    async with storage.open_write("files/acme/one") as writer:
        async for chunk in _chunks(data, 3000):
            await writer.write(chunk)
    assert writer.size == len(data)
    assert writer.sha256 == hashlib.sha256(data).hexdigest()
    assert await storage.size("files/acme/one") == len(data)
    assert await storage.checksum("files/acme/one") == hashlib.sha256(data).hexdigest()
    assert await _read_all(storage, "files/acme/one") == data
    assert await _read_all(storage, "files/acme/one", 10, 20) == data[10:20]
    assert await _read_all(storage, "files/acme/one", 49_990) == data[49_990:]
    # Reads come in chunks no larger than the provider's chunk size.
    sizes = [len(chunk) async for chunk in storage.read("files/acme/one")]
    assert max(sizes) <= 4096
    assert await storage.head("files/acme/one", 100) == data[:100]

    await storage.move("files/acme/one", "files/acme/two")
    assert not await storage.exists("files/acme/one")
    assert await storage.checksum("files/acme/two") == hashlib.sha256(data).hexdigest()
    assert await storage.delete("files/acme/two") is True
    assert await storage.delete("files/acme/two") is False
    assert list((tmp_path / "root").rglob("*.*")) == []


async def test_a_failed_write_leaves_nothing_and_keeps_the_old_blob(tmp_path: Path) -> None:
    storage = LocalFileStorage("local", tmp_path)
    async with storage.open_write("files/t/x") as writer:
        await writer.write(b"old content")

    async def failing_write() -> None:
        async with storage.open_write("files/t/x") as writer:
            await writer.write(b"new content that fails half-way")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        await failing_write()
    assert await _read_all(storage, "files/t/x") == b"old content"
    assert sorted(path.name for path in (tmp_path / "files" / "t").iterdir()) == ["x"]


@pytest.mark.parametrize(
    "key", ["../escape", "files/../../etc/passwd", "/absolute", "files//x", "files/x.partial", ""]
)
async def test_keys_cannot_leave_the_root(tmp_path: Path, key: str) -> None:
    storage = LocalFileStorage("local", tmp_path)
    with pytest.raises(ServiceError) as raised:
        await storage.size(key)
    assert raised.value.kind is ErrorKind.VALIDATION


async def test_copy_between_providers_and_registry(tmp_path: Path) -> None:
    registry = StorageRegistry.from_settings(FileSettings(storage_root=tmp_path))
    assert registry.names == ["archive", "local"]
    local, archive = registry.get("local"), registry.get("archive")
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with local.open_write("files/t/f") as writer:
        await writer.write(data)
    moved: list[int] = []

    async def on_chunk(count: int) -> None:
        moved.append(count)

    size, sha = await copy_blob(local, "files/t/f", archive, "files/t/f", on_chunk)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert sum(moved) == len(data)
    assert len(moved) == 4
    assert (tmp_path / "archive" / "files" / "t" / "f").read_bytes() == data
    with pytest.raises(ServiceError):
        registry.get("s3")


def test_throttle_paces_bytes() -> None:
    throttle = Throttle(1000)
    assert throttle.delay(500) == pytest.approx(0.5, abs=0.05)
    assert throttle.delay(500) == pytest.approx(1.0, abs=0.05)
    assert Throttle(None).delay(10**9) == 0.0


def test_keys_are_per_tenant_and_safe() -> None:
    file_id = "0d0b7c4e-8f1a-4a5b-9c3d-2e1f0a9b8c7d"
    assert file_key("acme", file_id) == f"files/acme/{file_id}"
    assert staging_key("acme", file_id, "a1") == f"staging/acme/{file_id}/a1"
    odd = tenant_segment("../evil tenant")
    assert odd.startswith("t-")
    assert "/" not in odd
    assert tenant_segment("../evil tenant") == odd


# Scanner (real clamd) -------------------------------------------------------------------


@pytest.mark.parametrize("over", ["socket", "tcp"])
async def test_clamd_finds_eicar_and_passes_clean_content(clamd: ClamdServer, over: str) -> None:
    address = clamd.socket_path if over == "socket" else ("127.0.0.1", clamd.tcp_port)
    scanner = ClamdScanner(address, timeout=30)
    await scanner.ping()
    infected = await scanner.scan(_chunks(EICAR, 10))
    assert not infected.clean
    assert infected.signature is not None
    assert EICAR_SIGNATURE in infected.signature
    clean = await scanner.scan(_chunks(os.urandom(3 * 1024 * 1024), 1024 * 1024 + 3))
    assert clean.clean
    assert clean.signature is None
    assert (await scanner.scan(_chunks(b"hello world"))).clean


async def test_clamd_unreachable_is_a_retryable_error(tmp_path: Path) -> None:
    scanner = ClamdScanner(tmp_path / "missing.sock", timeout=5)
    with pytest.raises(ScannerUnavailable) as raised:
        await scanner.scan(_chunks(b"data"))
    assert raised.value.kind is ErrorKind.EXTERNAL_SERVICE
    assert raised.value.kind.retryable
    with pytest.raises(ScannerUnavailable):
        await scanner.ping()


async def test_start_up_says_when_no_scanner_is_configured(
    settings: Settings, tmp_path: Path
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'f.sqlite'}", "file")
    try:
        parts = FileComponents.build(db, settings, FileSettings(storage_root=tmp_path))
        with structlog.testing.capture_logs() as logs:
            await check_scanner(parts)
        assert any(
            entry["event"] == "file.scanner_disabled" and entry["log_level"] == "warning"
            for entry in logs
        )
        production = settings.model_copy(update={"environment": Environment.PRODUCTION})
        parts = FileComponents.build(db, production, FileSettings(storage_root=tmp_path))
        with pytest.raises(RuntimeError, match="virus scanner"):
            await check_scanner(parts)
    finally:
        await db.dispose()


async def test_start_up_pings_a_configured_scanner(
    settings: Settings, tmp_path: Path, clamd: ClamdServer
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'f.sqlite'}", "file")
    try:
        # Over TCP, as the settings of a clamd in a container of its own spell it.
        config = FileSettings(storage_root=tmp_path, clamd_address=f"127.0.0.1:{clamd.tcp_port}")
        parts = FileComponents.build(db, settings, config)
        with structlog.testing.capture_logs() as logs:
            await check_scanner(parts)
        assert [entry["event"] for entry in logs] == ["file.scanner_ready"]
    finally:
        await db.dispose()


@pytest.mark.parametrize("address", ["clamd", "clamd:", ":3310", "clamd:33a0", "a b:3310"])
def test_a_clamd_address_without_host_and_port_is_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(ValueError, match="clamd_address"):
        FileSettings(storage_root=tmp_path, clamd_address=address)


# Sniffing, names, ranges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "declared", "expected"),
    [
        (png_bytes(16, 16), "text/plain", "image/png"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "image/png", "application/pdf"),
        (b"\x7fELF\x02\x01\x01" + bytes(60), "image/png", "application/x-executable"),
        (b"MZ\x90\x00\x03" + bytes(100), "text/plain", "application/x-msdownload"),
        (b"name,age\nada,36\n", "text/csv", "text/csv"),
        (b'{"a": 1}', "application/json", "application/json"),
        (b"<script>alert(1)</script>", "text/html", "text/plain"),
        ("h\u00e9llo w\u00f6rld".encode(), None, "text/plain"),
        (b"\x00\x01\x02\x03binary", "text/plain", "application/octet-stream"),
        (b"", "text/plain", "application/octet-stream"),
    ],
)
def test_content_type_comes_from_the_bytes(
    head: bytes, declared: str | None, expected: str
) -> None:
    assert sniff(head, declared) == expected


def test_text_cut_inside_a_character_is_still_text() -> None:
    head = ("\u00e9" * 10).encode()[:-1]
    assert sniff(head) == "text/plain"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\a\\b.txt", "b.txt"),
        ("../../etc/passwd", "passwd"),
    ],
)
def test_file_names_lose_their_directories(raw: str, expected: str) -> None:
    assert clean_file_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "..", "a\x00b", "x" * 256])
def test_bad_file_names_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="file name"):
        clean_file_name(raw)


def test_range_parsing() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    assert parse_range("bytes=50-5000", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole file
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=9-3", 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=-0", "bytes=500-600"):
        with pytest.raises(_Unsatisfiable):
            parse_range(unsatisfiable, 100)


def test_content_disposition_keeps_unicode_names() -> None:
    header = content_disposition('r\u00e9sum\u00e9 "final".pdf')
    assert header.startswith('attachment; filename="r_sum_ _final_.pdf"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf" in header
