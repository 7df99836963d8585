"""The file service on the wire: its activity names (other services' workflows call them by
name on ``TaskQueue.FILE``) and the models its workflows and activities take and return.

Workflows pass storage references (:class:`BlobRef`), never file bytes: Temporal payloads are
limited to 2 MiB and are kept in history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, JsonValue

from contracts.activities import ActivityRef
from contracts.names import TaskQueue

FILE_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# Only the characters of ids and key layouts: no "..", no absolute paths (checked again by
# every storage provider).
BLOB_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:=-]*(/[A-Za-z0-9][A-Za-z0-9._@:=-]*)*$"
PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class FileActivity(StrEnum):
    # file_upload
    VALIDATE_UPLOAD = "file.validate_upload"
    SCAN_BLOB = "file.scan_blob"
    CREATE_FILE_RECORD = "file.create_file_record"
    DELETE_FILE_RECORD = "file.delete_file_record"
    STORE_BLOB = "file.store_blob"
    DELETE_BLOB = "file.delete_blob"
    SET_FILE_STATUS = "file.set_file_status"
    # file_processing
    EXTRACT_METADATA = "file.extract_metadata"
    CREATE_THUMBNAIL = "file.create_thumbnail"
    DELETE_THUMBNAIL = "file.delete_thumbnail"
    # file_sharing (and the owner permission of file_upload)
    AUTHORIZE_SHARE = "file.authorize_share"
    SET_PERMISSION = "file.set_permission"
    RESTORE_PERMISSION = "file.restore_permission"
    SEND_SHARE_NOTIFICATION = "file.send_share_notification"
    # file_migration
    PLAN_MIGRATION = "file.plan_migration"
    LIST_MIGRATION_BATCH = "file.list_migration_batch"
    MIGRATE_FILE = "file.migrate_file"
    # read workflows and other services (tenant plans, dashboards)
    RECENT_FILES = "file.recent_files"
    GET_TENANT_USAGE = "file.get_tenant_usage"
    SET_TENANT_QUOTA = "file.set_tenant_quota"


class FileStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    DELETED = "deleted"


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    OWNER = "owner"

    @property
    def can_write(self) -> bool:
        return self is not Permission.READ


class SharePermission(StrEnum):
    """What a share may grant: ownership is never handed over by sharing."""

    READ = "read"
    WRITE = "write"


class BlobRef(BaseModel):
    """Where bytes live: a storage provider by name and a key inside it."""

    provider: str = Field(pattern=PROVIDER_PATTERN)
    key: str = Field(min_length=1, max_length=512, pattern=BLOB_KEY_PATTERN)


class FileRef(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)


# file_upload -------------------------------------------------------------------------


class FileUploadInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    declared_content_type: str = Field(max_length=255)
    # Where the HTTP endpoint streamed the bytes; size and SHA-256 were computed while streaming.
    staging: BlobRef
    size_bytes: int = Field(ge=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    # The provider the file is stored on.
    provider: str = Field(pattern=PROVIDER_PATTERN)


class FileUploadResult(BaseModel):
    file_id: str
    status: FileStatus
    content_type: str
    size_bytes: int
    sha256: str
    scanned: bool
    thumbnail: bool


class ValidateUploadInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    staging: BlobRef
    size_bytes: int = Field(ge=1)
    declared_content_type: str = Field(max_length=255)


class ValidatedUpload(BaseModel):
    # Sniffed from the bytes, never the client's claim.
    content_type: str


class ScanResult(BaseModel):
    # False when no scanner is configured (development only).
    scanned: bool
    engine: str | None = None


class CreateFileRecordInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    declared_content_type: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_PATTERN)
    blob: BlobRef


class StoreBlobInput(BaseModel):
    source: BlobRef
    target: BlobRef
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_PATTERN)


class SetFileStatusInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    status: FileStatus


# file_processing ---------------------------------------------------------------------


class FileProcessingInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)


class ExtractedMetadata(BaseModel):
    content_type: str
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ThumbnailResult(BaseModel):
    thumbnail: BlobRef | None = None
    # Why there is none (not an image, or an image that could not be decoded).
    reason: str | None = None


class FileProcessingResult(BaseModel):
    file_id: str
    content_type: str
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    thumbnail: BlobRef | None = None


# file_sharing ------------------------------------------------------------------------


class FileSharingInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    user_id: str = Field(min_length=1, max_length=128)
    permission: SharePermission
    # Where the notification goes (the caller resolves the user's address); None: no email.
    notify_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)


class FileSharingResult(BaseModel):
    file_id: str
    user_id: str
    permission: SharePermission
    notified: bool


class ShareTarget(BaseModel):
    file_id: str
    file_name: str


class SetPermissionInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    user_id: str = Field(min_length=1, max_length=128)
    permission: Permission


class PermissionChange(BaseModel):
    file_id: str
    user_id: str
    previous: Permission | None
    current: Permission


class RestorePermissionInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    user_id: str = Field(min_length=1, max_length=128)
    # None: the user had no permission before, so it is removed.
    permission: Permission | None


class ShareNotificationInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    file_name: str
    user_id: str
    permission: SharePermission
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    idempotency_key: str = Field(min_length=1, max_length=200)


# file_migration ----------------------------------------------------------------------


class FileMigrationInput(BaseModel):
    source: str = Field(pattern=PROVIDER_PATTERN)
    target: str = Field(pattern=PROVIDER_PATTERN)
    # Protects the storage from a migration saturating it; None: as fast as it goes.
    max_bytes_per_second: int | None = Field(default=None, ge=1024)
    # Carried over continue-as-new: where the previous run stopped and what it did.
    after_file_id: str | None = None
    total: int | None = None
    migrated: int = 0
    migrated_bytes: int = 0
    failed: list[str] = Field(default_factory=list)


class FileMigrationResult(BaseModel):
    source: str
    target: str
    total: int
    migrated: int
    migrated_bytes: int
    failed: list[str] = Field(default_factory=list)


class MigrationPlanInput(BaseModel):
    source: str = Field(pattern=PROVIDER_PATTERN)
    target: str = Field(pattern=PROVIDER_PATTERN)


class MigrationPlan(BaseModel):
    total: int
    total_bytes: int


class MigrationBatchInput(BaseModel):
    source: str = Field(pattern=PROVIDER_PATTERN)
    after_file_id: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class MigrationBatch(BaseModel):
    file_ids: list[str]


class MigrateFileInput(BaseModel):
    file_id: str = Field(pattern=FILE_ID_PATTERN)
    source: str = Field(pattern=PROVIDER_PATTERN)
    target: str = Field(pattern=PROVIDER_PATTERN)
    max_bytes_per_second: int | None = Field(default=None, ge=1024)


class MigrateFileResult(BaseModel):
    file_id: str
    # False when the file was no longer on the source (already moved, or deleted).
    moved: bool
    size_bytes: int
    sha256: str | None = None


# Reads (BFF dashboard aggregation) and other services ------------------------------------


class RecentFilesInput(BaseModel):
    limit: int = Field(default=10, ge=1, le=50)


class FileSummary(BaseModel):
    id: str
    name: str
    content_type: str
    size_bytes: int
    status: FileStatus
    owner_id: str
    created_at: datetime
    has_thumbnail: bool


class RecentFiles(BaseModel):
    files: list[FileSummary]


class TenantQuotaInput(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=128)
    limit_bytes: int = Field(ge=0)


class TenantRef(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=128)


class QuotaUsage(BaseModel):
    tenant_id: str
    limit_bytes: int
    used_bytes: int

    @property
    def available_bytes(self) -> int:
        return max(self.limit_bytes - self.used_bytes, 0)


class FileActivities:
    """Typed references to the file service's activities (name, task queue, input, result):
    workflows call them through the step kernel, services.common.steps."""

    AUTHORIZE_SHARE = ActivityRef(
        FileActivity.AUTHORIZE_SHARE, TaskQueue.FILE, FileSharingInput, ShareTarget
    )
    CREATE_FILE_RECORD = ActivityRef(
        FileActivity.CREATE_FILE_RECORD, TaskQueue.FILE, CreateFileRecordInput, FileSummary
    )
    CREATE_THUMBNAIL = ActivityRef(
        FileActivity.CREATE_THUMBNAIL, TaskQueue.FILE, FileRef, ThumbnailResult
    )
    DELETE_BLOB = ActivityRef(FileActivity.DELETE_BLOB, TaskQueue.FILE, BlobRef, bool)
    DELETE_FILE_RECORD = ActivityRef(FileActivity.DELETE_FILE_RECORD, TaskQueue.FILE, FileRef, bool)
    DELETE_THUMBNAIL = ActivityRef(FileActivity.DELETE_THUMBNAIL, TaskQueue.FILE, FileRef, bool)
    EXTRACT_METADATA = ActivityRef(
        FileActivity.EXTRACT_METADATA, TaskQueue.FILE, FileRef, ExtractedMetadata
    )
    GET_TENANT_USAGE = ActivityRef(
        FileActivity.GET_TENANT_USAGE, TaskQueue.FILE, TenantRef, QuotaUsage
    )
    LIST_MIGRATION_BATCH = ActivityRef(
        FileActivity.LIST_MIGRATION_BATCH, TaskQueue.FILE, MigrationBatchInput, MigrationBatch
    )
    MIGRATE_FILE = ActivityRef(
        FileActivity.MIGRATE_FILE, TaskQueue.FILE, MigrateFileInput, MigrateFileResult
    )
    PLAN_MIGRATION = ActivityRef(
        FileActivity.PLAN_MIGRATION, TaskQueue.FILE, MigrationPlanInput, MigrationPlan
    )
    RECENT_FILES = ActivityRef(
        FileActivity.RECENT_FILES, TaskQueue.FILE, RecentFilesInput, RecentFiles
    )
    RESTORE_PERMISSION = ActivityRef(
        FileActivity.RESTORE_PERMISSION, TaskQueue.FILE, RestorePermissionInput, type(None)
    )
    SCAN_BLOB = ActivityRef(FileActivity.SCAN_BLOB, TaskQueue.FILE, BlobRef, ScanResult)
    SEND_SHARE_NOTIFICATION = ActivityRef(
        FileActivity.SEND_SHARE_NOTIFICATION, TaskQueue.FILE, ShareNotificationInput, bool
    )
    SET_FILE_STATUS = ActivityRef(
        FileActivity.SET_FILE_STATUS, TaskQueue.FILE, SetFileStatusInput, FileSummary
    )
    SET_PERMISSION = ActivityRef(
        FileActivity.SET_PERMISSION, TaskQueue.FILE, SetPermissionInput, PermissionChange
    )
    SET_TENANT_QUOTA = ActivityRef(
        FileActivity.SET_TENANT_QUOTA, TaskQueue.FILE, TenantQuotaInput, QuotaUsage
    )
    STORE_BLOB = ActivityRef(FileActivity.STORE_BLOB, TaskQueue.FILE, StoreBlobInput, BlobRef)
    VALIDATE_UPLOAD = ActivityRef(
        FileActivity.VALIDATE_UPLOAD, TaskQueue.FILE, ValidateUploadInput, ValidatedUpload
    )
