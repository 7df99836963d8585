"""The load client's side of the wire: a minimal HTTP/1.1 keep-alive connection (a full
client such as httpx costs about a millisecond per request in Python, which would blur the
ratios between cheap endpoints), Server-Sent Events on it, and graphql-transport-ws.

One connection serves one request at a time; concurrent clients each hold their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol


class HttpError(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    def _head(self, method: str, path: str, headers: Mapping[str, str], length: int) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if length or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        # A server closes a keep-alive connection that idled past its timeout (uvicorn: 5 s);
        # like any HTTP client, open a fresh one and send again, once.
        if self._reader is not None and self._reader.at_eof():
            await self.close()
        reused = self._reader is not None
        try:
            return await self._exchange(method, path, body, headers)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            await self.close()
            if not reused:
                raise
        return await self._exchange(method, path, body, headers)

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None
    ) -> Reply:
        reader, writer = await self._open()
        writer.write(self._head(method, path, headers or {}, len(body)) + body)
        status, response_headers = await _read_head(reader)
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                chunk = await _read_chunk(reader)
                if not chunk:
                    break
                chunks.append(chunk)
            content = b"".join(chunks)
        else:
            content = await reader.readexactly(int(response_headers.get("content-length", "0")))
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, content)

    async def post_json(
        self, path: str, document: Any, headers: Mapping[str, str] | None = None
    ) -> Reply:
        return await self.request(
            "POST",
            path,
            body=json.dumps(document).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def events(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, str]]:
        """A Server-Sent Events stream: each event as its fields (``event``, ``data``, ``id``).
        The connection is spent afterwards."""
        reader, writer = await self._open()
        writer.write(self._head("GET", path, {"Accept": "text/event-stream", **(headers or {})}, 0))
        status, response_headers = await _read_head(reader)
        if status != 200:
            raise HttpError(f"GET {path}: {status}")
        chunked = response_headers.get("transfer-encoding", "").lower() == "chunked"
        buffer = b""
        try:
            while True:
                data = await _read_chunk(reader) if chunked else await reader.read(65536)
                if not data:
                    return
                buffer += data.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    fields: dict[str, str] = {}
                    for line in block.decode().split("\n"):
                        if not line or line.startswith(":"):
                            continue
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        fields[name] = f"{fields[name]}\n{value}" if name in fields else value
                    if fields:
                        yield fields
        finally:
            await self.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    size_line = await reader.readuntil(b"\r\n")
    size = int(size_line.split(b";", 1)[0].strip(), 16)
    if size == 0:
        await reader.readuntil(b"\r\n")  # the empty trailer
        return b""
    data = await reader.readexactly(size + 2)
    return data[:-2]


# GraphQL ----------------------------------------------------------------------------------


def graphql_body(query: str, variables: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps({"query": query, "variables": dict(variables or {})}).encode()


async def graphql(
    connection: HttpConnection,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    path: str = "/graphql",
) -> dict[str, Any]:
    """One GraphQL request; raises on an HTTP error or a GraphQL error."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    reply = await connection.request(
        "POST", path, body=graphql_body(query, variables), headers=headers
    )
    document: dict[str, Any] = reply.json()
    if reply.status != 200 or document.get("errors"):
        raise HttpError(f"GraphQL {reply.status}: {document.get('errors')}")
    return document


class WsSubscription:
    """One graphql-transport-ws connection carrying one subscription."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    @classmethod
    async def open(
        cls, base_url: str, token: str, query: str, variables: Mapping[str, Any]
    ) -> WsSubscription:
        url = base_url.replace("http://", "ws://") + "/graphql"
        socket = await websockets.connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            ping_interval=None,
            max_queue=None,
        )
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await socket.recv())
        if ack.get("type") != "connection_ack":
            await socket.close()
            raise HttpError(f"WebSocket not acknowledged: {ack}")
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": dict(variables)},
                }
            )
        )
        return cls(socket)

    async def payloads(self) -> AsyncIterator[dict[str, Any]]:
        """The ``next`` payloads until the subscription completes or fails."""
        async for raw in self.socket:
            message = json.loads(raw)
            if message["type"] == "next":
                payload: dict[str, Any] = message["payload"]
                yield payload
            elif message["type"] in ("complete", "error"):
                return

    async def close(self) -> None:
        await self.socket.close()
