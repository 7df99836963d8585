"""Helpers of the file service tests: identities, tokens, uploads, waiting on operations,
and looking at what the storage roots hold."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
from PIL import Image

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext
from services.file.components import FileComponents, components
from services.file.config import FileSettings
from services.file.keys import tenant_segment
from tests.support.services import RunningService
from workflow_client.operations import WorkflowOperations

T = TypeVar("T")
ADMIN_ROLES = ("owner", "admin", "member")


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def member(tenant_id: str, name: str = "user") -> RequestContext:
    return RequestContext(
        user_id=f"{name}-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id, roles=("member",)
    )


def admin(tenant_id: str, name: str = "admin") -> RequestContext:
    return RequestContext(
        user_id=f"{name}-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id, roles=ADMIN_ROLES
    )


def bearer(settings: Settings, context: RequestContext) -> dict[str, str]:
    """An Authorization header with a real RS256 access token for ``context``."""
    token, _claims = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


def png_bytes(width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            image.putpixel((x, y), (x % 256, y % 256, (x + y) % 256))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def tenant_blobs(config: FileSettings, tenant_id: str) -> list[Path]:
    """Every file (blobs, partial writes, thumbnails, staging) any provider holds for a tenant."""
    segment = tenant_segment(tenant_id)
    found: list[Path] = []
    for provider in config.providers:
        root = config.storage_root / provider
        for area in ("staging", "files", "thumbnails"):
            directory = root / area / segment
            if directory.exists():
                found.extend(path for path in directory.rglob("*") if path.is_file())
    return sorted(found)


@dataclass
class FileHarness:
    """The file service running in both modes, with the settings it runs on."""

    running: RunningService
    settings: Settings
    config: FileSettings

    @property
    def parts(self) -> FileComponents:
        return components(self.running.runtime)

    @property
    def ops(self) -> WorkflowOperations:
        return self.running.runtime.operations

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.running.url, timeout=60)

    def auth(self, context: RequestContext) -> dict[str, str]:
        return bearer(self.settings, context)

    async def upload(
        self,
        http: httpx.AsyncClient,
        context: RequestContext,
        data: bytes,
        name: str = "file.bin",
        content_type: str = "application/octet-stream",
        **headers: str,
    ) -> httpx.Response:
        return await http.post(
            "/api/file/uploads",
            content=data,
            headers={
                **self.auth(context),
                "content-type": content_type,
                # Percent-encoded UTF-8, as the API expects.
                "x-filename": quote(name, safe=""),
                **{key.replace("_", "-"): value for key, value in headers.items()},
            },
        )

    async def result(self, context: RequestContext, operation_id: str, result_type: type[T]) -> T:
        async with asyncio.timeout(60):
            return await self.ops.result(context, operation_id, result_type=result_type)
