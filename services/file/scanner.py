"""Virus scanning behind one interface; the implementation talks to ClamAV's ``clamd`` over
its Unix socket with the INSTREAM command, so the file streams through in chunks."""

from __future__ import annotations

import asyncio
import struct
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import ErrorKind
from services.common.errors import ServiceError

# clamd refuses INSTREAM chunks above its StreamMaxLength; 1 MiB chunks stay well below.
_MAX_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ScanVerdict:
    clean: bool
    # The signature that matched, when not clean.
    signature: str | None = None


class ScannerUnavailable(ServiceError):
    """The scanner could not be reached or answered nonsense: retried with backoff."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorKind.EXTERNAL_SERVICE, f"the virus scanner is unavailable: {reason}")


class Scanner(ABC):
    engine: str

    @abstractmethod
    async def scan(self, chunks: AsyncIterator[bytes]) -> ScanVerdict: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raises ScannerUnavailable when the scanner does not answer."""


class ClamdScanner(Scanner):
    engine = "clamav"

    def __init__(self, address: Path | tuple[str, int], timeout: float = 300.0) -> None:
        """``address``: clamd's Unix socket, or its TCP host and port."""
        self.address = address
        self.timeout = timeout

    async def ping(self) -> None:
        reply = await self._command(b"zPING\0")
        if reply != "PONG":
            raise ScannerUnavailable(f"unexpected answer to PING: {reply[:80]!r}")

    async def scan(self, chunks: AsyncIterator[bytes]) -> ScanVerdict:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await self._connect()
                try:
                    reply = await self._instream(reader, writer, chunks)
                finally:
                    writer.close()
        except TimeoutError:
            raise ScannerUnavailable("the scan timed out") from None
        return _verdict(reply)

    async def _instream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunks: AsyncIterator[bytes],
    ) -> str:
        try:
            writer.write(b"zINSTREAM\0")
            async for chunk in chunks:
                for offset in range(0, len(chunk), _MAX_CHUNK):
                    part = chunk[offset : offset + _MAX_CHUNK]
                    writer.write(struct.pack(">I", len(part)) + part)
                    await writer.drain()
            writer.write(struct.pack(">I", 0))
            await writer.drain()
        except (ConnectionError, BrokenPipeError):
            # clamd closes the stream early when it refuses it (size limit): its answer
            # says why, so read it rather than guessing.
            pass
        try:
            return await _read_reply(reader)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            raise ScannerUnavailable("the connection was closed without an answer") from error

    async def _command(self, command: bytes) -> str:
        try:
            async with asyncio.timeout(min(self.timeout, 10.0)):
                reader, writer = await self._connect()
                try:
                    writer.write(command)
                    await writer.drain()
                    return await _read_reply(reader)
                finally:
                    writer.close()
        except TimeoutError:
            raise ScannerUnavailable("no answer in time") from None
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            raise ScannerUnavailable("the connection was closed without an answer") from error

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if isinstance(self.address, Path):
                return await asyncio.open_unix_connection(str(self.address))
            return await asyncio.open_connection(*self.address)
        except OSError as error:
            raise ScannerUnavailable(f"cannot connect to clamd at {self.address}") from error


async def _read_reply(reader: asyncio.StreamReader) -> str:
    # Replies to z-prefixed commands end with a NUL byte.
    raw = await reader.readuntil(b"\0")
    return raw.rstrip(b"\0").decode("utf-8", "replace").strip()


def _verdict(reply: str) -> ScanVerdict:
    # "stream: OK", "stream: <signature> FOUND", "<reason> ERROR"
    body = reply.removeprefix("stream:").strip()
    if body == "OK":
        return ScanVerdict(clean=True)
    if body.endswith(" FOUND"):
        return ScanVerdict(clean=False, signature=body.removesuffix(" FOUND").strip())
    if "size limit exceeded" in body.lower():
        # Failing closed: a file the scanner cannot read whole is not accepted unscanned.
        raise ServiceError(ErrorKind.VALIDATION, "the file is too large to be scanned")
    raise ScannerUnavailable(f"scanner error: {body[:120]}")
