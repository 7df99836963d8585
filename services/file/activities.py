"""The file service's activities. Each is idempotent (a retry finds the work done and returns
the same answer) and checks that the caller's tenant owns what it touches."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import structlog
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import JsonValue
from temporalio import activity

from adx.settings import Settings
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.file import (
    BlobRef,
    CreateFileRecordInput,
    ExtractedMetadata,
    FileActivity,
    FileRef,
    FileSharingInput,
    FileStatus,
    FileSummary,
    MigrateFileInput,
    MigrateFileResult,
    MigrationBatch,
    MigrationBatchInput,
    MigrationPlan,
    MigrationPlanInput,
    Permission,
    PermissionChange,
    QuotaUsage,
    RecentFiles,
    RecentFilesInput,
    RestorePermissionInput,
    ScanResult,
    SetFileStatusInput,
    SetPermissionInput,
    ShareNotificationInput,
    ShareTarget,
    StoreBlobInput,
    TenantQuotaInput,
    TenantRef,
    ThumbnailResult,
    ValidatedUpload,
    ValidateUploadInput,
)
from services.common.activity import service_activity
from services.common.email import EmailOutbox, OutgoingEmail
from services.common.errors import NotFound, ServiceError, ensure_tenant, require_context
from services.file.config import FileSettings
from services.file.keys import file_key, staging_prefix, tenant_segment, thumbnail_key
from services.file.models import FileRecord, NewFile
from services.file.scanner import Scanner
from services.file.sniff import SNIFF_BYTES, is_image, sniff
from services.file.storage import (
    LocalFileStorage,
    StorageProvider,
    StorageRegistry,
    Throttle,
    copy_blob,
)
from services.file.store import FileStore, QuotaExceeded

log = structlog.stdlib.get_logger(__name__)
security_log = structlog.stdlib.get_logger("adx.security")


def file_link(settings: Settings, file_id: str) -> str:
    base = (settings.public_url or settings.url("gateway")).rstrip("/")
    return f"{base}/files/{file_id}"


class FileActivities:
    def __init__(
        self,
        store: FileStore,
        storage: StorageRegistry,
        scanner: Scanner | None,
        config: FileSettings,
        outbox: EmailOutbox,
        settings: Settings,
    ) -> None:
        self.store = store
        self.storage = storage
        self.scanner = scanner
        self.config = config
        self.outbox = outbox
        self.settings = settings

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.validate_upload,
            self.scan_blob,
            self.create_file_record,
            self.delete_file_record,
            self.store_blob,
            self.delete_blob,
            self.set_file_status,
            self.extract_metadata,
            self.create_thumbnail,
            self.delete_thumbnail,
            self.authorize_share,
            self.set_permission,
            self.restore_permission,
            self.send_share_notification,
            self.plan_migration,
            self.list_migration_batch,
            self.migrate_file,
            self.recent_files,
            self.get_tenant_usage,
            self.set_tenant_quota,
        ]

    # file_upload -------------------------------------------------------------------

    @service_activity(FileActivity.VALIDATE_UPLOAD)
    async def validate_upload(self, input: ValidateUploadInput) -> ValidatedUpload:
        """Type (sniffed from the bytes), size and quota, before anything is kept."""
        context = require_context()
        self._own_blob(context, input.staging)
        if not input.staging.key.startswith(staging_prefix(context.tenant_id, input.file_id)):
            ensure_tenant(None, "upload")
        provider = self.storage.get(input.staging.provider)
        size = await provider.size(input.staging.key)
        if size is None:
            raise ServiceError(ErrorKind.NOT_FOUND, "the uploaded content was not found")
        if size != input.size_bytes:
            raise ServiceError(
                ErrorKind.VALIDATION, "the uploaded content does not match its declared size"
            )
        if size > self.config.max_upload_bytes:
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"the file is larger than the {self.config.max_upload_bytes}-byte limit",
            )
        head = await provider.head(input.staging.key, SNIFF_BYTES)
        content_type = sniff(head, input.declared_content_type)
        if content_type not in self.config.allowed_content_types:
            raise ServiceError(
                ErrorKind.VALIDATION, f"files of type {content_type} are not allowed"
            )
        usage = await self.store.usage(context.tenant_id)
        if usage.used_bytes + size > usage.limit_bytes:
            raise QuotaExceeded(usage, size)
        return ValidatedUpload(content_type=content_type)

    @service_activity(FileActivity.SCAN_BLOB)
    async def scan_blob(self, blob: BlobRef) -> ScanResult:
        """Streams the blob through the virus scanner; an infected blob is deleted at once
        and the upload refused for good."""
        async with keep_alive():
            return await self._scan_blob(blob)

    async def _scan_blob(self, blob: BlobRef) -> ScanResult:
        context = require_context()
        self._own_blob(context, blob)
        if self.scanner is None:
            log.warning("file.scan_skipped", reason="no scanner configured", key=blob.key)
            return ScanResult(scanned=False)
        provider = self.storage.get(blob.provider)
        verdict = await self.scanner.scan(provider.read(blob.key))
        if not verdict.clean:
            security_log.warning(
                "security.malware_detected",
                signature=verdict.signature,
                tenant_id=context.tenant_id,
                user_id=context.user_id,
                key=blob.key,
            )
            await provider.delete(blob.key)
            raise ServiceError(ErrorKind.VALIDATION, "file rejected: malware detected")
        return ScanResult(scanned=True, engine=self.scanner.engine)

    @service_activity(FileActivity.CREATE_FILE_RECORD)
    async def create_file_record(self, input: CreateFileRecordInput) -> FileSummary:
        context = require_context()
        if input.blob.key != file_key(context.tenant_id, input.file_id):
            ensure_tenant(None, "file")
        self.storage.get(input.blob.provider)
        record = await self.store.create_file(
            NewFile(
                id=input.file_id,
                tenant_id=context.tenant_id,
                owner_id=context.user_id,
                name=input.name,
                declared_content_type=input.declared_content_type,
                content_type=input.content_type,
                size_bytes=input.size_bytes,
                sha256=input.sha256,
                provider=input.blob.provider,
                storage_key=input.blob.key,
            )
        )
        ensure_tenant(record.tenant_id, "file")
        return record.summary()

    @service_activity(FileActivity.DELETE_FILE_RECORD)
    async def delete_file_record(self, input: FileRef) -> bool:
        record = await self.store.find_file(input.file_id)
        if record is None:
            return False
        ensure_tenant(record.tenant_id, "file")
        return await self.store.delete_file(record.tenant_id, record.id)

    @service_activity(FileActivity.STORE_BLOB)
    async def store_blob(self, input: StoreBlobInput) -> BlobRef:
        """Moves the staged bytes to their place and verifies them against the checksum
        computed at upload. Done already (a retry): the stored blob is checked and kept."""
        async with keep_alive():
            return await self._store_blob(input)

    async def _store_blob(self, input: StoreBlobInput) -> BlobRef:
        context = require_context()
        self._own_blob(context, input.source)
        self._own_blob(context, input.target)
        source = self.storage.get(input.source.provider)
        target = self.storage.get(input.target.provider)
        if await source.exists(input.source.key):
            if source is target:
                await target.move(input.source.key, input.target.key)
            else:
                await copy_blob(source, input.source.key, target, input.target.key)
        elif not await target.exists(input.target.key):
            raise ServiceError(ErrorKind.NOT_FOUND, "the uploaded content was not found")
        size = await target.size(input.target.key)
        checksum = await target.checksum(input.target.key)
        if size != input.size_bytes or checksum != input.sha256:
            await target.delete(input.target.key)
            raise ServiceError(
                ErrorKind.VALIDATION, "the stored content does not match the uploaded content"
            )
        await source.delete(input.source.key)
        return input.target

    @service_activity(FileActivity.DELETE_BLOB)
    async def delete_blob(self, blob: BlobRef) -> bool:
        self._own_blob(require_context(), blob)
        return await self.storage.get(blob.provider).delete(blob.key)

    @service_activity(FileActivity.SET_FILE_STATUS)
    async def set_file_status(self, input: SetFileStatusInput) -> FileSummary:
        record = await self._file(input.file_id)
        await self.store.set_status(record.tenant_id, record.id, input.status)
        return (await self._file(input.file_id)).summary()

    # file_processing ---------------------------------------------------------------

    @service_activity(FileActivity.EXTRACT_METADATA)
    async def extract_metadata(self, input: FileRef) -> ExtractedMetadata:
        """The content type from the stored bytes, and what can be read from them."""
        async with keep_alive():
            return await self._extract_metadata(input)

    async def _extract_metadata(self, input: FileRef) -> ExtractedMetadata:
        record = await self._file(input.file_id)
        provider = self.storage.get(record.provider)
        head = await provider.head(record.storage_key, SNIFF_BYTES)
        content_type = sniff(head, record.declared_content_type)
        details: dict[str, JsonValue] = dict(record.metadata)
        if content_type.startswith("text/") or content_type == "application/json":
            details["charset"] = "utf-8"
        if is_image(content_type):
            async with _local_path(provider, record.storage_key) as path:
                details.update(await asyncio.to_thread(_image_details, path))
        await self.store.set_content(record.tenant_id, record.id, content_type, details)
        return ExtractedMetadata(content_type=content_type, metadata=details)

    @service_activity(FileActivity.CREATE_THUMBNAIL)
    async def create_thumbnail(self, input: FileRef) -> ThumbnailResult:
        async with keep_alive():
            return await self._create_thumbnail(input)

    async def _create_thumbnail(self, input: FileRef) -> ThumbnailResult:
        record = await self._file(input.file_id)
        if not is_image(record.content_type):
            return ThumbnailResult(reason="not an image")
        provider = self.storage.get(record.provider)
        async with _local_path(provider, record.storage_key) as path:
            png = await asyncio.to_thread(_thumbnail_png, path, self.config.thumbnail_max_pixels)
        if png is None:
            return ThumbnailResult(reason="the image could not be decoded")
        key = thumbnail_key(record.tenant_id, record.id)
        async with provider.open_write(key) as writer:
            await writer.write(png)
        await self.store.set_thumbnail(record.tenant_id, record.id, key)
        return ThumbnailResult(thumbnail=BlobRef(provider=provider.name, key=key))

    @service_activity(FileActivity.DELETE_THUMBNAIL)
    async def delete_thumbnail(self, input: FileRef) -> bool:
        record = await self.store.find_file(input.file_id)
        if record is None:
            return False
        ensure_tenant(record.tenant_id, "file")
        provider = self.storage.get(record.provider)
        deleted = await provider.delete(thumbnail_key(record.tenant_id, record.id))
        await self.store.set_thumbnail(record.tenant_id, record.id, None)
        return deleted

    # file_sharing ------------------------------------------------------------------

    @service_activity(FileActivity.AUTHORIZE_SHARE)
    async def authorize_share(self, input: FileSharingInput) -> ShareTarget:
        """Only the owner (or a tenant admin) shares a file, and only a ready one."""
        context = require_context()
        record = await self._file(input.file_id)
        if record.status is FileStatus.DELETED:
            raise NotFound("file")
        mine = await self.store.permission_of(record.id, context.user_id)
        if mine is not Permission.OWNER and not context.is_tenant_admin():
            if mine is None:
                raise NotFound("file")
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the file's owner can share it")
        if input.user_id == record.owner_id:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "the file's owner already has every permission",
                fields={"user_id": "the file's owner already has every permission"},
            )
        if record.status is not FileStatus.READY:
            raise ServiceError(ErrorKind.CONFLICT, "the file is still being processed")
        return ShareTarget(file_id=record.id, file_name=record.name)

    @service_activity(FileActivity.SET_PERMISSION)
    async def set_permission(self, input: SetPermissionInput) -> PermissionChange:
        context = require_context()
        record = await self._file(input.file_id)
        if record.owner_id != context.user_id and not context.is_tenant_admin():
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the file's owner can share it")
        if input.permission is Permission.OWNER and input.user_id != record.owner_id:
            raise ServiceError(ErrorKind.VALIDATION, "ownership cannot be granted")
        previous = await self.store.set_permission(
            record.tenant_id, record.id, input.user_id, input.permission, context.user_id
        )
        return PermissionChange(
            file_id=record.id,
            user_id=input.user_id,
            previous=previous,
            current=input.permission,
        )

    @service_activity(FileActivity.RESTORE_PERMISSION)
    async def restore_permission(self, input: RestorePermissionInput) -> None:
        context = require_context()
        record = await self.store.find_file(input.file_id)
        if record is None:
            return
        ensure_tenant(record.tenant_id, "file")
        if input.permission is None:
            await self.store.remove_permission(record.tenant_id, record.id, input.user_id)
        else:
            await self.store.set_permission(
                record.tenant_id, record.id, input.user_id, input.permission, context.user_id
            )

    @service_activity(FileActivity.SEND_SHARE_NOTIFICATION)
    async def send_share_notification(self, input: ShareNotificationInput) -> bool:
        context = require_context()
        record = await self._file(input.file_id)
        verb = "view" if input.permission.value == "read" else "view and edit"
        body = (
            f'{context.user_id} shared the file "{record.name}" with you; you can {verb} it.\n'
            f"\nOpen it: {file_link(self.settings, record.id)}\n"
        )
        entry = await self.outbox.deliver(
            OutgoingEmail(
                idempotency_key=input.idempotency_key,
                to=input.email,
                subject=f"A file was shared with you: {record.name}",
                body=body,
            )
        )
        return entry.sent_at is not None

    # file_migration ----------------------------------------------------------------

    @service_activity(FileActivity.PLAN_MIGRATION)
    async def plan_migration(self, input: MigrationPlanInput) -> MigrationPlan:
        context = require_context()
        if not context.is_tenant_admin():
            raise ServiceError(
                ErrorKind.AUTHORIZATION, "only a tenant admin can migrate the tenant's files"
            )
        if input.source == input.target:
            raise ServiceError(ErrorKind.VALIDATION, "the source and target are the same")
        self.storage.get(input.source)
        self.storage.get(input.target)
        count, size = await self.store.count_on_provider(context.tenant_id, input.source)
        return MigrationPlan(total=count, total_bytes=size)

    @service_activity(FileActivity.LIST_MIGRATION_BATCH)
    async def list_migration_batch(self, input: MigrationBatchInput) -> MigrationBatch:
        context = require_context()
        ids = await self.store.ids_on_provider(
            context.tenant_id, input.source, input.after_file_id, input.limit
        )
        return MigrationBatch(file_ids=ids)

    @service_activity(FileActivity.MIGRATE_FILE)
    async def migrate_file(self, input: MigrateFileInput) -> MigrateFileResult:
        """Copy -> verify the copy's checksum -> switch the record -> delete the source.

        Each step can be repeated: a retry after a crash copies again (the partial copy is
        replaced), or, when the record already points at the target, only finishes the
        source's clean-up."""
        async with keep_alive():
            return await self._migrate_file(input)

    async def _migrate_file(self, input: MigrateFileInput) -> MigrateFileResult:
        record = await self.store.find_file(input.file_id)
        if record is None or record.deleted_at is not None:
            return MigrateFileResult(file_id=input.file_id, moved=False, size_bytes=0)
        ensure_tenant(record.tenant_id, "file")
        source = self.storage.get(input.source)
        target = self.storage.get(input.target)
        keys = [record.storage_key]
        if record.thumbnail_key is not None:
            keys.append(record.thumbnail_key)
        if record.provider == input.target:
            for key in keys:
                await source.delete(key)
            return MigrateFileResult(
                file_id=record.id, moved=True, size_bytes=record.size_bytes, sha256=record.sha256
            )
        if record.provider != input.source:
            return MigrateFileResult(file_id=record.id, moved=False, size_bytes=0)

        throttle = Throttle(input.max_bytes_per_second)

        async def on_chunk(count: int) -> None:
            await asyncio.sleep(throttle.delay(count))

        size, copied = await copy_blob(
            source, record.storage_key, target, record.storage_key, on_chunk
        )
        if copied != record.sha256 or size != record.size_bytes:
            await target.delete(record.storage_key)
            log.error("file.migration_source_corrupt", file_id=record.id, provider=source.name)
            raise ServiceError(ErrorKind.INTERNAL, "the source content does not match its checksum")
        # What the target holds now, read back, not what was sent to it.
        if await target.checksum(record.storage_key) != record.sha256:
            await target.delete(record.storage_key)
            raise ServiceError(ErrorKind.EXTERNAL_SERVICE, "the copy did not verify")
        if record.thumbnail_key is not None and await source.exists(record.thumbnail_key):
            await copy_blob(source, record.thumbnail_key, target, record.thumbnail_key, on_chunk)
        await self.store.switch_provider(record.tenant_id, record.id, input.source, input.target)
        for key in keys:
            await source.delete(key)
        return MigrateFileResult(
            file_id=record.id, moved=True, size_bytes=record.size_bytes, sha256=record.sha256
        )

    # Reads and other services ------------------------------------------------------

    @service_activity(FileActivity.RECENT_FILES)
    async def recent_files(self, input: RecentFilesInput) -> RecentFiles:
        context = require_context()
        records, _ = await self.store.list_files(
            context.tenant_id,
            context.user_id,
            all_of_tenant=context.is_tenant_admin(),
            limit=input.limit,
        )
        return RecentFiles(files=[record.summary() for record in records])

    @service_activity(FileActivity.GET_TENANT_USAGE)
    async def get_tenant_usage(self, input: TenantRef) -> QuotaUsage:
        ensure_tenant(input.tenant_id, "tenant")
        return await self.store.usage(input.tenant_id)

    @service_activity(FileActivity.SET_TENANT_QUOTA)
    async def set_tenant_quota(self, input: TenantQuotaInput) -> QuotaUsage:
        context = ensure_tenant(input.tenant_id, "tenant")
        if not context.is_tenant_admin():
            raise ServiceError(ErrorKind.AUTHORIZATION, "only a tenant admin can change quotas")
        return await self.store.set_quota(input.tenant_id, input.limit_bytes)

    # Helpers -----------------------------------------------------------------------

    async def _file(self, file_id: str) -> FileRecord:
        record = await self.store.find_file(file_id)
        if record is None:
            raise NotFound("file")
        ensure_tenant(record.tenant_id, "file")
        return record

    @staticmethod
    def _own_blob(context: RequestContext, blob: BlobRef) -> None:
        """Every key is <area>/<tenant>/...: a reference into another tenant's area is an
        isolation violation."""
        parts = blob.key.split("/")
        owner = (
            context.tenant_id
            if len(parts) > 2 and parts[1] == tenant_segment(context.tenant_id)
            else None
        )
        ensure_tenant(owner, "file")


@asynccontextmanager
async def keep_alive(interval: float = 1.0) -> AsyncIterator[None]:
    """Heartbeats while a long step runs (streaming, hashing, decoding an image), so a worker
    that is alive is never taken for dead, and a cancellation reaches the activity."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def _local_path(provider: StorageProvider, key: str) -> AsyncIterator[Path]:
    """A path on this machine holding the blob (image libraries want a seekable file):
    the blob itself for local storage, else a temporary copy."""
    if isinstance(provider, LocalFileStorage):
        yield provider.path(key)
        return
    with tempfile.TemporaryDirectory(prefix="adx-file-") as directory:
        path = Path(directory) / "blob"
        with path.open("wb") as handle:
            async for chunk in provider.read(key):
                await asyncio.to_thread(handle.write, chunk)
        yield path


@contextmanager
def _image(path: Path) -> Iterator[Image.Image]:
    with Image.open(path) as image:
        yield image


def _image_details(path: Path) -> dict[str, JsonValue]:
    try:
        with _image(path) as image:
            details: dict[str, JsonValue] = {
                "width": image.width,
                "height": image.height,
                "image_format": image.format,
                "mode": image.mode,
            }
            frames = getattr(image, "n_frames", 1)
            if isinstance(frames, int) and frames > 1:
                details["frames"] = frames
            return details
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return {"image_error": "the image could not be decoded"}


def _thumbnail_png(path: Path, max_pixels: int) -> bytes | None:
    try:
        with _image(path) as image:
            image.draft("RGB", (max_pixels, max_pixels))
            oriented = ImageOps.exif_transpose(image)
            oriented.thumbnail((max_pixels, max_pixels))
            mode = "RGBA" if oriented.mode in {"RGBA", "LA", "P", "PA"} else "RGB"
            output = io.BytesIO()
            oriented.convert(mode).save(output, format="PNG", optimize=True)
            return output.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None
