"""The File entity (owned here), shares, and the reads behind them: cached gateway calls and
the per-request DataLoader that turns N file lookups into one batch."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from aiodataloader import DataLoader
from pydantic import BaseModel, JsonValue
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts.context import RequestContext
from contracts.file import FILE_ID_PATTERN
from gateway_client import CacheScope, GatewayError, GatewayNotFound, build_path, tag, tenant_tag
from graph.context import GraphContext
from graph.errors import ClientError, from_gateway_error, not_found

# How long reads through the gateway are served from the cache (mutations invalidate them
# sooner through their tags).
READ_TTL_SECONDS = 30.0
_FILE_ID = re.compile(FILE_ID_PATTERN)


# Cache tags --------------------------------------------------------------------------------
# The tenant's file lists (any upload, share or delete in the tenant may change a page).
def files_tag(who: RequestContext) -> str:
    return tag(who, "files", CacheScope.TENANT)


# One file (its record and shares), for every user of the tenant.
def file_tag(who: RequestContext, file_id: str) -> str:
    return tenant_tag(who.tenant_id, f"file.{file_id}")


# Wire models (the file service's JSON) ---------------------------------------------------------


class FileInfoData(BaseModel):
    id: str
    name: str
    content_type: str
    declared_content_type: str
    size_bytes: int
    sha256: str
    status: str
    owner_id: str
    provider: str
    has_thumbnail: bool
    metadata: dict[str, JsonValue]
    permission: str | None
    created_at: datetime
    updated_at: datetime


class FilePageData(BaseModel):
    items: list[FileInfoData]
    next_cursor: str | None = None


class ShareData(BaseModel):
    user_id: str
    permission: str
    granted_by: str
    created_at: datetime


class OperationAcceptedData(BaseModel):
    operation_id: str


# Errors -----------------------------------------------------------------------------------------


def plausible_file_id(file_id: str) -> bool:
    """An id the file service could have issued (anything else is "not found", no call)."""
    return _FILE_ID.fullmatch(file_id) is not None


# Reads through the gateway ------------------------------------------------------------------------


async def fetch_files(context: GraphContext, first: int, after: str | None) -> FilePageData:
    """One page of the files the caller may see: one cached gateway call."""
    who = await context.require_identity()
    params: dict[str, str | int] = {"limit": first}
    if after is not None:
        params["cursor"] = after
    try:
        data = await context.deps.gateway.get_json(
            who,
            "/api/file/files",
            token=context.token,
            params=params,
            cache_ttl=READ_TTL_SECONDS,
            tags=[files_tag(who)],
            query_name="file.files",
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    page = FilePageData.model_validate(data)
    loader = file_loader(context)
    for item in page.items:
        loader.prime(item.id, item)
    return page


async def fetch_file(context: GraphContext, file_id: str) -> FileInfoData | None:
    who = await context.require_identity()
    if not plausible_file_id(file_id):
        return None
    try:
        data = await context.deps.gateway.get_json(
            who,
            build_path("/api/file/files/{file_id}", file_id=file_id),
            token=context.token,
            cache_ttl=READ_TTL_SECONDS,
            tags=[file_tag(who, file_id), files_tag(who)],
            query_name="file.file",
        )
    except GatewayNotFound:
        return None
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return FileInfoData.model_validate(data)


def file_loader(context: GraphContext) -> DataLoader[str, FileInfoData | None]:
    """Files by id, one batch per request (entity references, ``file(id)``)."""
    return context.loader_of_each("file.files", lambda file_id: fetch_file(context, file_id))


async def load_file(context: GraphContext, file_id: str) -> FileInfoData:
    found = await file_loader(context).load(file_id)  # raises the id's error
    if found is None:
        raise not_found("file")
    return found


async def fetch_shares(context: GraphContext, file_id: str) -> list[ShareData]:
    who = await context.require_identity()
    try:
        data = await context.deps.gateway.get_json(
            who,
            build_path("/api/file/files/{file_id}/shares", file_id=file_id),
            token=context.token,
            cache_ttl=READ_TTL_SECONDS,
            tags=[file_tag(who, file_id)],
            query_name="file.shares",
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return [ShareData.model_validate(item) for item in data or []]


def shares_loader(context: GraphContext) -> DataLoader[str, list[ShareData] | Exception]:
    async def batch(ids: list[str]) -> list[list[ShareData] | Exception]:
        async def one(file_id: str) -> list[ShareData] | Exception:
            try:
                return await fetch_shares(context, file_id)
            except ClientError as error:
                return error

        return list(await asyncio.gather(*(one(i) for i in ids)))

    loader: DataLoader[str, list[ShareData] | Exception] = context.loader("file.shares", batch)
    return loader


# GraphQL types ------------------------------------------------------------------------------


@strawberry.federation.type(name="User", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class UserRef:
    """A reference to a user; the user subgraph owns its fields."""

    id: strawberry.ID


@strawberry.federation.type(name="Tenant", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class TenantRef:
    """A reference to a tenant; the tenant subgraph owns its fields."""

    id: strawberry.ID


@strawberry.enum
class FileStatus(Enum):
    PROCESSING = "processing"
    READY = "ready"
    DELETED = "deleted"


@strawberry.enum
class FilePermission(Enum):
    READ = "read"
    WRITE = "write"
    OWNER = "owner"


@strawberry.enum
class SharePermission(Enum):
    READ = "read"
    WRITE = "write"


@strawberry.type
class FileShare:
    user_id: strawberry.ID
    permission: FilePermission
    granted_by: strawberry.ID
    created_at: datetime

    @strawberry.field
    def user(self) -> UserRef:
        return UserRef(id=self.user_id)

    @classmethod
    def of(cls, share: ShareData) -> FileShare:
        return cls(
            user_id=strawberry.ID(share.user_id),
            permission=FilePermission(share.permission),
            granted_by=strawberry.ID(share.granted_by),
            created_at=share.created_at,
        )


@strawberry.federation.type(name="File", keys=["id"])
class File:
    """A file of the caller's tenant the caller may see."""

    id: strawberry.ID
    name: str
    content_type: str
    declared_content_type: str
    size_bytes: float = strawberry.field(description="Bytes (a Float: it may pass 2^31).")
    sha256: str
    status: FileStatus
    owner_id: strawberry.ID
    has_thumbnail: bool
    metadata: JSON
    permission: FilePermission | None = strawberry.field(
        description="The caller's own permission (admins see every file, maybe with none)."
    )
    created_at: datetime
    updated_at: datetime
    tenant_id: strawberry.Private[str]

    @strawberry.field
    def owner(self) -> UserRef:
        return UserRef(id=self.owner_id)

    @strawberry.field
    def tenant(self) -> TenantRef:
        return TenantRef(id=strawberry.ID(self.tenant_id))

    @strawberry.field(description="Who the file is shared with (its owner included).")
    async def shares(self, info: Info[GraphContext, Any]) -> list[FileShare]:
        found = await shares_loader(info.context).load(str(self.id))
        if isinstance(found, Exception):
            raise found
        return [FileShare.of(share) for share in found]

    @classmethod
    def of(cls, data: FileInfoData, tenant_id: str) -> File:
        return cls(
            id=strawberry.ID(data.id),
            name=data.name,
            content_type=data.content_type,
            declared_content_type=data.declared_content_type,
            size_bytes=data.size_bytes,
            sha256=data.sha256,
            status=FileStatus(data.status),
            owner_id=strawberry.ID(data.owner_id),
            has_thumbnail=data.has_thumbnail,
            metadata=cast(JSON, data.metadata),
            permission=FilePermission(data.permission) if data.permission else None,
            created_at=data.created_at,
            updated_at=data.updated_at,
            tenant_id=tenant_id,
        )

    @classmethod
    async def resolve_reference(cls, info: Info[GraphContext, Any], id: strawberry.ID) -> File:
        who = await info.context.require_identity()
        return cls.of(await load_file(info.context, str(id)), who.tenant_id)
