"""The file service's HTTP API (server mode).

Uploads stream: the request body goes to a staging blob chunk by chunk while its size and
SHA-256 are computed, and the ``file_upload`` workflow takes it from there. Downloads stream
from the storage provider, with ``Range`` for resuming. Another tenant's file, or one the caller
may not see, is "not found".
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote, unquote

import structlog
from pydantic import BaseModel
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from adx.problems import problem
from adx.settings import Environment
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.file import (
    FILE_ID_PATTERN,
    BlobRef,
    FileMigrationInput,
    FileProcessingInput,
    FileSharingInput,
    FileStatus,
    FileUploadInput,
    Permission,
)
from contracts.names import WorkflowType
from services.common.errors import NotFound, ServiceError
from services.common.http import idempotency_key, identity, json, parse_body
from services.common.openapi import IDEMPOTENCY_KEY, Body, Doc, Endpoint, JsonSchema, Raw
from services.common.service import ServiceRuntime
from services.file.components import FileComponents
from services.file.keys import staging_key
from services.file.models import (
    FileInfo,
    FilePage,
    FileRecord,
    FilesQuery,
    MigrationRequest,
    OperationAccepted,
    QuotaInfo,
    RenameRequest,
    ShareInfo,
    ShareRequest,
    UploadAccepted,
    clean_file_name,
)
from services.file.sniff import media_type
from services.file.storage import StorageProvider
from services.file.store import QuotaExceeded
from workflow_client.errors import OperationNotFound, WorkflowClientError
from workflow_client.operations import new_operation_id

log = structlog.stdlib.get_logger(__name__)

_FILE_ID = re.compile(FILE_ID_PATTERN)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_UPLOAD_NAMESPACE = uuid.UUID("8d7c1f9e-2b54-4a0f-9e3c-71c5a9d2e6b8")

# What the documents say about the bytes the routes take and give.
_BINARY: JsonSchema = {"type": "string", "format": "binary"}
_NO_SNIFF: JsonSchema = {"type": "string", "enum": ["nosniff"]}
_LENGTH: JsonSchema = {"type": "integer", "minimum": 0}
_DOWNLOAD_HEADERS: dict[str, JsonSchema] = {
    "ETag": {
        "type": "string",
        "pattern": r'^"[0-9a-f]{64}"$',
        "description": "the SHA-256 of the bytes, quoted",
    },
    "Accept-Ranges": {"type": "string", "enum": ["bytes"]},
    "Content-Disposition": {
        "type": "string",
        "description": "attachment, with the file's name (filename and filename*)",
    },
    "Content-Length": _LENGTH,
    "Cache-Control": {"type": "string", "enum": ["private, no-cache"]},
    "X-Content-Type-Options": _NO_SNIFF,
}
_UPLOAD_HEADERS: dict[str, JsonSchema] = {
    "X-Filename": {
        "type": "string",
        "minLength": 1,
        "description": "The file's name, percent-encoded UTF-8 (directories are "
        "dropped; 1 to 255 characters, no control characters).",
    },
    **IDEMPOTENCY_KEY,
}
_DOWNLOAD_REQUEST_HEADERS: dict[str, JsonSchema] = {
    "Range": {
        "type": "string",
        "description": "one range, bytes=first-last, bytes=first- or bytes=-suffix (a malformed "
        "header or several ranges: the whole file)",
    },
    "If-Range": {
        "type": "string",
        "description": "the ETag the range is for (another: the whole file)",
    },
    "If-None-Match": {"type": "string", "description": "ETags, or *: 304 when one matches"},
}


class _TooLarge(Exception):
    pass


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last) inclusive; None when the header is to be
    ignored (malformed, or several ranges: the whole file is sent, as RFC 9110 allows)."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable()
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _Unsatisfiable()
    return start, min(end, size - 1)


def content_disposition(name: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileApi:
    def __init__(self, runtime: ServiceRuntime, components: FileComponents) -> None:
        self.runtime = runtime
        self.c = components

    def routes(self) -> list[BaseRoute]:
        started = {202: OperationAccepted}
        return [
            Endpoint(
                "/api/file/uploads",
                self.upload,
                "POST",
                Doc(
                    "upload a file (file_upload): the raw bytes as the body",
                    {202: UploadAccepted},
                    body=Body(content={"application/octet-stream": _BINARY}),
                    errors=(409, 413, 415),
                    headers=_UPLOAD_HEADERS,
                    required_headers=("X-Filename",),
                    description="The body is the file itself. Any media type but "
                    "multipart/* (415) is taken, and kept as the file's declared_content_type; "
                    "the stored content_type is sniffed from the bytes. Its name is in the "
                    "X-Filename header. An empty file is refused "
                    "(422), a tenant over its quota gets 409, a file over the size limit 413. "
                    "The same Idempotency-Key answers with the first upload's operation "
                    "and file ids.",
                ),
            ),
            Endpoint(
                "/api/file/files",
                self.list_files,
                "GET",
                Doc(
                    "the files the caller may see (a tenant admin: all of the tenant's), "
                    "newest first",
                    {200: FilePage},
                    query=FilesQuery,
                ),
            ),
            Endpoint(
                "/api/file/files/{file_id}",
                self.get_file,
                "GET",
                Doc("a file's metadata", {200: FileInfo}),
            ),
            Endpoint(
                "/api/file/files/{file_id}",
                self.rename,
                "PATCH",
                Doc(
                    "rename a file (write permission)",
                    {200: FileInfo},
                    body=RenameRequest,
                    errors=(403,),
                ),
            ),
            Endpoint(
                "/api/file/files/{file_id}",
                self.delete,
                "DELETE",
                Doc("delete a file (its owner or a tenant admin)", {204: None}, errors=(403,)),
            ),
            # A GET route answers HEAD too (starlette): the headers without the bytes.
            Endpoint(
                "/api/file/files/{file_id}/content",
                self.content,
                "GET",
                Doc(
                    "download a file's bytes, with Range for resuming",
                    {
                        200: Raw(
                            content={"*/*": _BINARY},
                            description="the whole file, as its sniffed media type",
                            headers=_DOWNLOAD_HEADERS,
                        ),
                        206: Raw(
                            content={"*/*": _BINARY},
                            description="the requested range",
                            headers={
                                **_DOWNLOAD_HEADERS,
                                "Content-Range": {
                                    "type": "string",
                                    "pattern": r"^bytes [0-9]+-[0-9]+/[0-9]+$",
                                },
                            },
                        ),
                        304: None,
                    },
                    errors=(409, 416),
                    headers=_DOWNLOAD_REQUEST_HEADERS,
                    description="409 while the file is still being processed; 304 when "
                    "If-None-Match names its ETag; 416 when the range starts past the end.",
                ),
            ),
            Endpoint(
                "/api/file/files/{file_id}/thumbnail",
                self.thumbnail,
                "GET",
                Doc(
                    "a file's thumbnail (404 when it has none)",
                    {
                        200: Raw(
                            content={"image/png": _BINARY},
                            description="the thumbnail",
                            headers={
                                "Content-Length": _LENGTH,
                                "Cache-Control": {
                                    "type": "string",
                                    "enum": ["private, max-age=300"],
                                },
                                "X-Content-Type-Options": _NO_SNIFF,
                            },
                        )
                    },
                ),
            ),
            Endpoint(
                "/api/file/files/{file_id}/shares",
                self.list_shares,
                "GET",
                Doc("who has which permission on a file", {200: list[ShareInfo]}),
            ),
            Endpoint(
                "/api/file/files/{file_id}/shares",
                self.share,
                "POST",
                Doc(
                    "share a file with a member (file_sharing; its owner or a tenant admin)",
                    started,
                    body=ShareRequest,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/file/files/{file_id}/processing",
                self.reprocess,
                "POST",
                Doc(
                    "process a file again: metadata and thumbnail (file_processing; write "
                    "permission)",
                    started,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/file/quota",
                self.quota,
                "GET",
                Doc("the tenant's storage quota and usage", {200: QuotaInfo}),
            ),
            Endpoint(
                "/api/file/migrations",
                self.migrate,
                "POST",
                Doc(
                    "move the tenant's files to another storage provider (file_migration; "
                    "tenant admins)",
                    started,
                    body=MigrationRequest,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Route("/dev/outbox", self.dev_outbox, methods=["GET"]),
        ]

    # Upload ------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        context = identity(request)
        config = self.c.config
        declared = media_type(request.headers.get("content-type"))
        if declared.startswith("multipart/"):
            return problem(
                415,
                "Unsupported media type",
                "send the file as the raw request body, its name in the X-Filename header",
                request=request,
            )
        name = _file_name(request.headers.get("x-filename"))
        length = _content_length(request.headers.get("content-length"))
        if length is not None and length > config.max_upload_bytes:
            return _too_large(request, config.max_upload_bytes)
        if length == 0:
            raise ServiceError(ErrorKind.VALIDATION, "the file is empty")
        if length is not None:
            # Refused before a byte is stored when the size is announced.
            await self._check_quota(context, length)

        request_key = idempotency_key(request)
        if request_key:
            file_id = str(
                uuid.uuid5(
                    _UPLOAD_NAMESPACE, f"{context.tenant_id}|{context.user_id}|{request_key}"
                )
            )
            existing = await self._existing_upload(context, request_key)
            if existing is not None:
                return json(UploadAccepted(operation_id=existing, file_id=file_id), status=202)
        else:
            file_id = str(uuid.uuid4())

        staging = BlobRef(
            provider=config.staging_provider,
            key=staging_key(context.tenant_id, file_id, uuid.uuid4().hex),
        )
        provider = self.c.storage.get(staging.provider)
        try:
            async with provider.open_write(staging.key) as writer:
                async for chunk in request.stream():
                    if writer.size + len(chunk) > config.max_upload_bytes:
                        raise _TooLarge()
                    await writer.write(chunk)
        except _TooLarge:
            return _too_large(request, config.max_upload_bytes)
        except ClientDisconnect:
            log.info("file.upload_abandoned", file_id=file_id)
            return Response(status_code=400)

        try:
            if writer.size == 0:
                raise ServiceError(ErrorKind.VALIDATION, "the file is empty")
            await self._check_quota(context, writer.size)
            operation = await self.runtime.operations.start(
                context,
                WorkflowType.FILE_UPLOAD.value,
                FileUploadInput(
                    file_id=file_id,
                    name=name,
                    declared_content_type=declared,
                    staging=staging,
                    size_bytes=writer.size,
                    sha256=writer.sha256,
                    provider=config.default_provider,
                ),
                request_key=request_key,
            )
        except WorkflowClientError as error:
            await provider.delete(staging.key)
            raise _unavailable(error) from error
        except BaseException:
            await provider.delete(staging.key)
            raise
        log.info("file.upload_received", file_id=file_id, size=writer.size)
        return json(UploadAccepted(operation_id=operation.id, file_id=file_id), status=202)

    async def _check_quota(self, context: RequestContext, size: int) -> None:
        usage = await self.c.store.usage(context.tenant_id)
        if usage.used_bytes + size > usage.limit_bytes:
            raise QuotaExceeded(usage, size)

    async def _existing_upload(self, context: RequestContext, request_key: str) -> str | None:
        """The upload already started with this Idempotency-Key, if any (its body is then
        not read again)."""
        operation_id = new_operation_id(WorkflowType.FILE_UPLOAD.value, context, request_key)
        try:
            operation = await self.runtime.operations.describe(context, operation_id)
        except OperationNotFound:
            return None
        except WorkflowClientError as error:
            raise _unavailable(error) from error
        return operation.id

    # Metadata ----------------------------------------------------------------------

    async def list_files(self, request: Request) -> Response:
        context = identity(request)
        # Invalid parameters raise ValidationError: a 422 with field errors.
        query = FilesQuery.model_validate(dict(request.query_params))
        records, following = await self.c.store.list_files(
            context.tenant_id,
            context.user_id,
            all_of_tenant=context.is_tenant_admin(),
            limit=query.limit,
            cursor=query.page_cursor(),
        )
        mine = await self.c.store.permissions_for(context.user_id, [r.id for r in records])
        items = [FileInfo.of(record, mine.get(record.id)) for record in records]
        return json(FilePage(items=items, next_cursor=following.encode() if following else None))

    async def get_file(self, request: Request) -> Response:
        context = identity(request)
        record, permission = await self._visible(context, request)
        return json(FileInfo.of(record, permission))

    async def rename(self, request: Request) -> Response:
        context = identity(request)
        record, permission = await self._visible(context, request)
        self._require_write(context, permission)
        body = await parse_body(request, RenameRequest)
        renamed = await self.c.store.rename(context.tenant_id, record.id, body.name)
        if renamed is None:
            raise NotFound("file")
        return json(FileInfo.of(renamed, permission))

    async def delete(self, request: Request) -> Response:
        """Soft delete (the record stays, marked deleted, and stops counting towards the
        quota), then the bytes and the thumbnail are removed from storage."""
        context = identity(request)
        record, permission = await self._visible(context, request)
        if permission is not Permission.OWNER and not context.is_tenant_admin():
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the file's owner can delete it")
        deleted = await self.c.store.soft_delete(context.tenant_id, record.id)
        if deleted is None:
            raise NotFound("file")
        provider = self.c.storage.get(deleted.provider)
        for key in (deleted.storage_key, deleted.thumbnail_key):
            if key is None:
                continue
            try:
                await provider.delete(key)
            except OSError:
                # The file is deleted for the user either way; the bytes wait for cleanup.
                log.exception("file.blob_delete_failed", file_id=record.id, key=key)
        log.info("file.deleted", file_id=record.id, tenant_id=context.tenant_id)
        return Response(status_code=204)

    # Content -----------------------------------------------------------------------

    async def content(self, request: Request) -> Response:
        context = identity(request)
        record, _ = await self._visible(context, request)
        if record.status is not FileStatus.READY:
            raise ServiceError(ErrorKind.CONFLICT, "the file is still being processed")
        provider, record = await self._blob_of(context, record)
        etag = f'"{record.sha256}"'
        headers = {
            "accept-ranges": "bytes",
            "etag": etag,
            "content-disposition": content_disposition(record.name),
            "x-content-type-options": "nosniff",
            "cache-control": "private, no-cache",
        }
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        size = record.size_bytes
        status, start, end = 200, 0, size - 1
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header and (if_range is None or if_range.strip() == etag):
            try:
                selected = parse_range(range_header, size)
            except _Unsatisfiable:
                return problem(
                    416,
                    "Range not satisfiable",
                    f"the file has {size} bytes",
                    request=request,
                    headers={"content-range": f"bytes */{size}", "accept-ranges": "bytes"},
                )
            if selected is not None:
                status, (start, end) = 206, selected
                headers["content-range"] = f"bytes {start}-{end}/{size}"
        headers["content-length"] = str(end - start + 1)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=record.content_type)
        return StreamingResponse(
            provider.read(record.storage_key, start, end + 1),
            status_code=status,
            headers=headers,
            media_type=record.content_type,
        )

    async def thumbnail(self, request: Request) -> Response:
        context = identity(request)
        record, _ = await self._visible(context, request)
        if record.thumbnail_key is None:
            raise NotFound("thumbnail")
        provider = self.c.storage.get(record.provider)
        size = await provider.size(record.thumbnail_key)
        if size is None:
            raise NotFound("thumbnail")
        return StreamingResponse(
            provider.read(record.thumbnail_key),
            headers={
                "content-length": str(size),
                "cache-control": "private, max-age=300",
                "x-content-type-options": "nosniff",
            },
            media_type="image/png",
        )

    # Sharing and processing ----------------------------------------------------------

    async def share(self, request: Request) -> Response:
        context = identity(request)
        record, permission = await self._visible(context, request)
        if permission is not Permission.OWNER and not context.is_tenant_admin():
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the file's owner can share it")
        body = await parse_body(request, ShareRequest)
        return await self._start(
            context,
            request,
            WorkflowType.FILE_SHARING,
            FileSharingInput(
                file_id=record.id,
                user_id=body.user_id,
                permission=body.permission,
                notify_email=body.notify_email,
            ),
        )

    async def list_shares(self, request: Request) -> Response:
        context = identity(request)
        record, _ = await self._visible(context, request)
        grants = await self.c.store.permissions_of_file(context.tenant_id, record.id)
        return json(
            [
                ShareInfo(
                    user_id=grant.user_id,
                    permission=grant.permission,
                    granted_by=grant.granted_by,
                    created_at=grant.created_at,
                )
                for grant in grants
            ]
        )

    async def reprocess(self, request: Request) -> Response:
        context = identity(request)
        record, permission = await self._visible(context, request)
        self._require_write(context, permission)
        return await self._start(
            context,
            request,
            WorkflowType.FILE_PROCESSING,
            FileProcessingInput(file_id=record.id),
        )

    # Tenant-wide ---------------------------------------------------------------------

    async def quota(self, request: Request) -> Response:
        context = identity(request)
        usage = await self.c.store.usage(context.tenant_id)
        return json(
            QuotaInfo(
                tenant_id=usage.tenant_id,
                limit_bytes=usage.limit_bytes,
                used_bytes=usage.used_bytes,
                available_bytes=usage.available_bytes,
            )
        )

    async def migrate(self, request: Request) -> Response:
        context = identity(request)
        if not context.is_tenant_admin():
            raise ServiceError(
                ErrorKind.AUTHORIZATION, "only a tenant admin can migrate the tenant's files"
            )
        body = await parse_body(request, MigrationRequest)
        for field, provider in (("source", body.source), ("target", body.target)):
            if not self.c.storage.knows(provider):
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"unknown storage provider {provider!r}",
                    fields={field: f"one of {', '.join(self.c.storage.names)}"},
                )
        if body.source == body.target:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "the source and target are the same",
                fields={"target": "must differ from source"},
            )
        return await self._start(
            context,
            request,
            WorkflowType.FILE_MIGRATION,
            FileMigrationInput(
                source=body.source,
                target=body.target,
                max_bytes_per_second=body.max_bytes_per_second,
            ),
        )

    async def dev_outbox(self, request: Request) -> Response:
        if self.c.settings.environment is not Environment.DEV:
            raise NotFound("page")
        entries = await self.c.outbox.recent(
            limit=_int_param(request, "limit", 50, 1, 500), to=request.query_params.get("to")
        )
        return json(entries)

    # Helpers -----------------------------------------------------------------------

    async def _visible(
        self, context: RequestContext, request: Request
    ) -> tuple[FileRecord, Permission | None]:
        """The file if it is the caller's tenant's, live, and the caller may see it."""
        file_id = str(request.path_params["file_id"])
        if not _FILE_ID.match(file_id):
            raise NotFound("file")
        record = await self.c.store.get_file(context.tenant_id, file_id)
        if record is None:
            raise NotFound("file")
        permission = await self.c.store.permission_of(record.id, context.user_id)
        if permission is None and not context.is_tenant_admin():
            raise NotFound("file")
        return record, permission

    @staticmethod
    def _require_write(context: RequestContext, permission: Permission | None) -> None:
        if (permission is None or not permission.can_write) and not context.is_tenant_admin():
            raise ServiceError(ErrorKind.AUTHORIZATION, "you may only read this file")

    async def _blob_of(
        self, context: RequestContext, record: FileRecord
    ) -> tuple[StorageProvider, FileRecord]:
        """The provider holding the bytes now: a migration may have just moved them."""
        for _ in range(2):
            provider = self.c.storage.get(record.provider)
            if await provider.exists(record.storage_key):
                return provider, record
            fresh = await self.c.store.get_file(context.tenant_id, record.id)
            if fresh is None:
                break
            record = fresh
        log.error("file.content_missing", file_id=record.id, provider=record.provider)
        raise NotFound("file content")

    async def _start(
        self,
        context: RequestContext,
        request: Request,
        workflow_type: WorkflowType,
        input: BaseModel,
    ) -> JSONResponse:
        try:
            operation = await self.runtime.operations.start(
                context,
                workflow_type.value,
                input,
                request_key=idempotency_key(request),
            )
        except WorkflowClientError as error:
            raise _unavailable(error) from error
        return json(OperationAccepted(operation_id=operation.id), status=202)


def _file_name(header: str | None) -> str:
    if header is None:
        raise ServiceError(
            ErrorKind.VALIDATION,
            "the X-Filename header is required",
            fields={"X-Filename": "required"},
        )
    try:
        return clean_file_name(unquote(header, errors="strict"))
    except (ValueError, UnicodeDecodeError) as error:
        message = str(error) if isinstance(error, ValueError) else "not UTF-8"
        raise ServiceError(
            ErrorKind.VALIDATION, "invalid file name", fields={"X-Filename": message}
        ) from error


def _content_length(header: str | None) -> int | None:
    if header is None:
        return None
    if not (header.isascii() and header.isdigit()):
        raise ServiceError(
            ErrorKind.VALIDATION,
            "invalid Content-Length",
            fields={"Content-Length": "not a number"},
        )
    return int(header)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ServiceError(
            ErrorKind.VALIDATION,
            f"invalid {name}",
            fields={name: f"a whole number from {low} to {high}"},
        )
    return int(raw)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _too_large(request: Request, limit: int) -> Response:
    return problem(
        413,
        "Payload too large",
        f"the file is larger than the {limit}-byte limit",
        type_="urn:adx:problem:PayloadTooLarge",
        request=request,
    )


def _unavailable(error: WorkflowClientError) -> ServiceError:
    log.warning("file.workflows_unavailable", reason=str(error))
    return ServiceError(ErrorKind.EXTERNAL_SERVICE, "the workflow service is unavailable")


def routes_for(runtime: ServiceRuntime, components: FileComponents) -> list[BaseRoute]:
    return FileApi(runtime, components).routes()
