"""File subgraph: ``files``, ``file``; ``uploadFile`` (GraphQL multipart upload),
``shareFile``, ``deleteFile``.

Reads are cached gateway calls tagged with the tenant's file list (and the file), which the
mutations invalidate — at once, and again when the operation they started has ended. An
upload is streamed to the file service through the gateway chunk by chunk from Strawberry's
spooled upload, never read whole into memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload
from strawberry.types import Info

from bffs.file.types import (
    File,
    OperationAcceptedData,
    SharePermission,
    TenantRef,
    UserRef,
    fetch_files,
    file_tag,
    files_tag,
    load_file,
    plausible_file_id,
)
from gateway_client import GatewayError, build_path, error_from_response
from graph import tasks
from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, bad_input, from_gateway_error, not_found
from graph.permissions import IsAuthenticated
from graph.runtime import Subgraph
from graph.types import Connection, Edge, OperationRef, PageInfo, page_size

# Bytes read from the spooled upload and sent at once.
UPLOAD_CHUNK_BYTES = 1024 * 1024
# Writing a large upload through the gateway may take a while; connecting may not.
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        yield chunk


async def _upload_size(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    # Strawberry's Starlette view always sets it; measure otherwise (a seek, no read).
    size = upload.file.seek(0, 2)
    await upload.seek(0)
    return int(size)


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The files of the caller's tenant the caller may see, newest first.",
    )
    async def files(
        self, info: Info[GraphContext, Any], first: int | None = None, after: str | None = None
    ) -> Connection[File]:
        who = await info.context.require_identity()
        page = await fetch_files(info.context, page_size(first), after)
        cursor = page.next_cursor or ""
        return Connection(
            edges=[Edge(cursor=cursor, node=File.of(item, who.tenant_id)) for item in page.items],
            page_info=PageInfo(
                has_next_page=page.next_cursor is not None, end_cursor=cursor or None
            ),
        )

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A file the caller may see; any other id is NOT_FOUND.",
    )
    async def file(self, info: Info[GraphContext, Any], id: strawberry.ID) -> File:
        who = await info.context.require_identity()
        return File.of(await load_file(info.context, str(id)), who.tenant_id)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Uploads a file (GraphQL multipart request); it is scanned, stored and "
        "processed by the file_upload operation returned at once (its result names the file).",
    )
    async def upload_file(
        self,
        info: Info[GraphContext, Any],
        file: Upload,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> OperationRef:
        context = info.context
        who = await context.require_identity()
        if not isinstance(file, UploadFile):
            raise bad_input("file must be a multipart upload")
        filename = name or file.filename
        if not filename:
            raise bad_input("the file needs a name", [{"field": "name", "message": "required"}])
        deps = context.deps
        headers = {
            "authorization": f"Bearer {context.token}",
            "accept": "application/json, application/problem+json",
            "content-type": file.content_type or "application/octet-stream",
            # Percent-encoded UTF-8, as the file service expects.
            "x-filename": quote(filename, safe=""),
            # Announced so the service refuses an over-quota file before storing a byte.
            "content-length": str(await _upload_size(file)),
        }
        if context.correlation_id:
            headers["x-correlation-id"] = context.correlation_id
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        http = deps.http
        invalidates = [files_tag(who)]
        try:
            response = await http.post(
                f"{deps.gateway.base_url}/api/file/uploads",
                content=_chunks(file),
                headers=headers,
                timeout=UPLOAD_TIMEOUT,
            )
        except httpx.HTTPError as error:
            raise ClientError(ErrorCode.UNAVAILABLE, "the file service is unavailable") from error
        finally:
            await file.close()
        if not response.is_success:
            raise from_gateway_error(error_from_response(response))
        accepted = OperationAcceptedData.model_validate(response.json())
        await deps.gateway.invalidate(invalidates)
        deps.metrics.workflow_started("file_upload")
        tasks.watch(deps, who, accepted.operation_id, invalidates)
        return OperationRef.of(accepted.operation_id)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Shares a file with a user of the tenant (its owner or an admin); the "
        "file_sharing operation is returned at once.",
    )
    async def share_file(
        self,
        info: Info[GraphContext, Any],
        file_id: strawberry.ID,
        user_id: strawberry.ID,
        permission: SharePermission = SharePermission.READ,
        notify_email: str | None = None,
        idempotency_key: str | None = None,
    ) -> OperationRef:
        context = info.context
        who = await context.require_identity()
        if not plausible_file_id(str(file_id)):
            raise not_found("file")
        body: dict[str, Any] = {"user_id": str(user_id), "permission": permission.value}
        if notify_email is not None:
            body["notify_email"] = notify_email
        invalidates = [file_tag(who, str(file_id)), files_tag(who)]
        try:
            answer = await context.deps.gateway.send_json(
                who,
                "POST",
                build_path("/api/file/files/{file_id}/shares", file_id=str(file_id)),
                token=context.token,
                json=body,
                idempotency_key=idempotency_key,
                invalidates=invalidates,
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        accepted = OperationAcceptedData.model_validate(answer)
        context.deps.metrics.workflow_started("file_sharing")
        tasks.watch(context.deps, who, accepted.operation_id, invalidates)
        return OperationRef.of(accepted.operation_id)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Deletes a file (its owner or an admin); true once it is gone.",
    )
    async def delete_file(self, info: Info[GraphContext, Any], id: strawberry.ID) -> bool:
        context = info.context
        who = await context.require_identity()
        if not plausible_file_id(str(id)):
            raise not_found("file")
        try:
            await context.deps.gateway.send_json(
                who,
                "DELETE",
                build_path("/api/file/files/{file_id}", file_id=str(id)),
                token=context.token,
                invalidates=[file_tag(who, str(id)), files_tag(who)],
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        return True


SUBGRAPH = Subgraph(
    name="file",
    query=Query,
    mutation=Mutation,
    types=(File, UserRef, TenantRef),
    uploads=True,
)
