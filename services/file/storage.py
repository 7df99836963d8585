"""Where file bytes are kept: one provider interface, registered by name.

Everything streams in chunks: no path reads a whole file into memory. A write becomes visible
only when it completes (a crash or an error mid-write leaves no blob under the key), so readers
and retried activities never see half a file. Workflows only know provider names and keys, so
an S3-compatible provider (multipart upload on write, ranged GET on read) is one more subclass
registered under a name; no workflow changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from contracts.errors import ErrorKind
from services.common.errors import ServiceError
from services.file.config import FileSettings

DEFAULT_CHUNK = 1024 * 1024
PARTIAL_SUFFIX = ".partial"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:=-]*(/[A-Za-z0-9][A-Za-z0-9._@:=-]*)*$")

# Called with the number of bytes just moved (heartbeats, throttling).
ProgressCallback = Callable[[int], Awaitable[None]]


class BlobNotFound(ServiceError):
    def __init__(self) -> None:
        super().__init__(ErrorKind.NOT_FOUND, "the stored content was not found")


class BlobWriter(ABC):
    """An open write: bytes go in chunk by chunk; size and SHA-256 are computed on the way."""

    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        self._hash.update(chunk)
        await self._write(chunk)

    @abstractmethod
    async def _write(self, chunk: bytes) -> None: ...


class StorageProvider(ABC):
    """A place for blobs. Keys are relative paths of safe characters."""

    def __init__(self, name: str, chunk_bytes: int = DEFAULT_CHUNK) -> None:
        self.name = name
        self.chunk_bytes = chunk_bytes

    @abstractmethod
    def open_write(self, key: str) -> contextlib.AbstractAsyncContextManager[BlobWriter]:
        """Writes a blob; it appears under ``key`` (replacing any older one) only when the
        block exits normally. An error inside the block leaves nothing behind."""

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` in chunks (``end`` None: to the end)."""

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """The blob's size, or None when there is no blob under ``key``."""

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Removes the blob; False when there was none (deleting twice is fine)."""

    async def checksum(self, key: str) -> str:
        """SHA-256 (hex) of the blob's bytes, read in chunks."""
        digest = hashlib.sha256()
        async for chunk in self.read(key):
            digest.update(chunk)
        return digest.hexdigest()

    async def move(self, source_key: str, target_key: str) -> None:
        """Moves a blob inside this provider (providers may do it without copying)."""
        await copy_blob(self, source_key, self, target_key)
        await self.delete(source_key)

    async def head(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes (fewer if the blob is shorter)."""
        parts: list[bytes] = []
        async for chunk in self.read(key, 0, length):
            parts.append(chunk)
        return b"".join(parts)


class LocalFileStorage(StorageProvider):
    """Blobs as files under a root directory; writes go to ``<key>.partial`` and are renamed
    into place after an fsync."""

    def __init__(self, name: str, root: Path, chunk_bytes: int = DEFAULT_CHUNK) -> None:
        super().__init__(name, chunk_bytes)
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key.split("/") or key.endswith(PARTIAL_SUFFIX):
            raise ServiceError(ErrorKind.VALIDATION, "invalid storage key")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ServiceError(ErrorKind.VALIDATION, "invalid storage key")
        return path

    @asynccontextmanager
    async def open_write(self, key: str) -> AsyncIterator[BlobWriter]:
        final = self.path(key)
        # One partial name per key: a retried write after a crash reuses (truncates) it
        # instead of leaving an orphan per attempt.
        partial = final.with_name(final.name + PARTIAL_SUFFIX)

        def open_partial() -> IO[bytes]:
            final.parent.mkdir(parents=True, exist_ok=True)
            return partial.open("wb")

        handle = await asyncio.to_thread(open_partial)
        writer = _LocalWriter(handle, self.chunk_bytes)
        try:
            yield writer
            await writer.flush()
            await asyncio.to_thread(_commit, handle, partial, final)
        except BaseException:
            await asyncio.to_thread(_discard, handle, partial)
            raise

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound() from None
        try:
            await asyncio.to_thread(handle.seek, start)
            position = start
            while end is None or position < end:
                want = self.chunk_bytes if end is None else min(self.chunk_bytes, end - position)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def size(self, key: str) -> int | None:
        path = self.path(key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> bool:
        path = self.path(key)

        def remove() -> bool:
            partial = path.with_name(path.name + PARTIAL_SUFFIX)
            partial.unlink(missing_ok=True)
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(remove)

    async def checksum(self, key: str) -> str:
        path = self.path(key)
        chunk_bytes = self.chunk_bytes

        def digest() -> str:
            sha = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(chunk_bytes):
                    sha.update(chunk)
            return sha.hexdigest()

        try:
            return await asyncio.to_thread(digest)
        except FileNotFoundError:
            raise BlobNotFound() from None

    async def move(self, source_key: str, target_key: str) -> None:
        source, target = self.path(source_key), self.path(target_key)

        def rename() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            _fsync_dir(target.parent)

        try:
            await asyncio.to_thread(rename)
        except FileNotFoundError:
            raise BlobNotFound() from None


class _LocalWriter(BlobWriter):
    def __init__(self, handle: IO[bytes], chunk_bytes: int) -> None:
        super().__init__()
        self._handle = handle
        self._buffer = bytearray()
        self._chunk_bytes = chunk_bytes

    async def _write(self, chunk: bytes) -> None:
        # Small network chunks are gathered so the disk sees few, large writes.
        self._buffer += chunk
        if len(self._buffer) >= self._chunk_bytes:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            await asyncio.to_thread(self._handle.write, data)


def _commit(handle: IO[bytes], partial: Path, final: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(partial, final)
    _fsync_dir(final.parent)


def _discard(handle: IO[bytes], partial: Path) -> None:
    handle.close()
    partial.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Throttle:
    """Keeps a byte stream at or under ``bytes_per_second`` (None: no limit)."""

    def __init__(self, bytes_per_second: int | None) -> None:
        self._rate = bytes_per_second
        self._started = time.monotonic()
        self._bytes = 0

    def delay(self, count: int) -> float:
        """Counts ``count`` more bytes; returns how long to wait to stay under the rate."""
        if self._rate is None:
            return 0.0
        self._bytes += count
        return max(self._bytes / self._rate - (time.monotonic() - self._started), 0.0)


async def copy_blob(
    source: StorageProvider,
    source_key: str,
    target: StorageProvider,
    target_key: str,
    on_chunk: ProgressCallback | None = None,
) -> tuple[int, str]:
    """Streams a blob from one provider to another; returns (size, SHA-256) of what was
    written."""
    async with target.open_write(target_key) as writer:
        async for chunk in source.read(source_key):
            await writer.write(chunk)
            if on_chunk is not None:
                await on_chunk(len(chunk))
    return writer.size, writer.sha256


class StorageRegistry:
    """The providers of this deployment, by name."""

    def __init__(self, providers: Mapping[str, StorageProvider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def from_settings(cls, settings: FileSettings) -> StorageRegistry:
        return cls(
            {
                name: LocalFileStorage(name, settings.storage_root / name, settings.chunk_bytes)
                for name in settings.providers
            }
        )

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def knows(self, name: str) -> bool:
        return name in self._providers

    def get(self, name: str) -> StorageProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise ServiceError(ErrorKind.VALIDATION, f"unknown storage provider {name!r}")
        return provider
