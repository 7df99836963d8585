"""Helpers of the file service tests: identities, tokens, uploads, waiting on operations,
and looking at what the storage roots hold."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
from PIL import Image
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext, current_context
from contracts.errors import ErrorKind
from contracts.names import TaskQueue
from contracts.user import (
    GetMembershipInput,
    MembershipSnapshot,
    MembershipState,
    MembershipStatus,
    UserActivity,
)
from services.file.components import FileComponents, components
from services.file.config import FileSettings
from services.file.keys import tenant_segment
from tests.support.services import RunningService
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

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
class Members:
    """Stands in for the user service's membership projection (Temporal's testing pattern:
    ``user.get_membership`` registered under its real name on the user task queue). Holds
    the memberships the tests add; like the real activity it answers only for the caller's
    own tenant."""

    statuses: dict[tuple[str, str], MembershipStatus] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def add(
        self, context: RequestContext, status: MembershipStatus = MembershipStatus.ACTIVE
    ) -> None:
        self.statuses[(context.user_id, context.tenant_id)] = status

    @activity.defn(name=UserActivity.GET_MEMBERSHIP)
    async def get_membership(self, input: GetMembershipInput) -> MembershipState:
        context = current_context()
        if context is None or context.tenant_id != input.tenant_id:
            raise ApplicationError(
                "membership not found", type=ErrorKind.TENANT_ISOLATION.value, non_retryable=True
            )
        self.asked.append((input.user_id, input.tenant_id))
        status = self.statuses.get((input.user_id, input.tenant_id))
        snapshot = None
        if status is not None:
            snapshot = MembershipSnapshot(
                user_id=input.user_id, tenant_id=input.tenant_id, roles=["member"], status=status
            )
        return MembershipState(
            user_id=input.user_id, tenant_id=input.tenant_id, membership=snapshot
        )


@asynccontextmanager
async def membership_stand_in(client: Client) -> AsyncIterator[Members]:
    """A worker on the user task queue answering ``user.get_membership`` from ``Members``."""
    members = Members()
    async with create_worker(
        client, task_queue=TaskQueue.USER.value, activities=[members.get_membership]
    ):
        yield members


@dataclass
class FileHarness:
    """The file service running in both modes, with the settings it runs on."""

    running: RunningService
    settings: Settings
    config: FileSettings
    # Who file_sharing's check_grantee step finds (served only where the harness runs
    # membership_stand_in with it).
    members: Members = field(default_factory=Members)

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
