"""The file service's HTTP boundary and store rows."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from contracts.errors import ErrorKind
from contracts.file import (
    EMAIL_PATTERN,
    PROVIDER_PATTERN,
    FileStatus,
    FileSummary,
    Permission,
    SharePermission,
)
from services.common.errors import ServiceError

MAX_NAME = 255
DEFAULT_PAGE = 20
MAX_PAGE = 100
_DIGITS = re.compile(r"[0-9]+")


def clean_file_name(value: str) -> str:
    """A display name: no directories, no control characters, not empty."""
    name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in {".", ".."}:
        raise ValueError("the file name is empty")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise ValueError("the file name contains control characters")
    if len(name) > MAX_NAME:
        raise ValueError(f"the file name is longer than {MAX_NAME} characters")
    return name


# Store rows ----------------------------------------------------------------------------


class FileRecord(BaseModel):
    id: str
    tenant_id: str
    owner_id: str
    name: str
    declared_content_type: str
    content_type: str
    size_bytes: int
    sha256: str
    provider: str
    storage_key: str
    thumbnail_key: str | None
    status: FileStatus
    metadata: dict[str, JsonValue]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    def summary(self) -> FileSummary:
        return FileSummary(
            id=self.id,
            name=self.name,
            content_type=self.content_type,
            size_bytes=self.size_bytes,
            status=self.status,
            owner_id=self.owner_id,
            created_at=self.created_at,
            has_thumbnail=self.thumbnail_key is not None,
        )


class NewFile(BaseModel):
    id: str
    tenant_id: str
    owner_id: str
    name: str
    declared_content_type: str
    content_type: str
    size_bytes: int
    sha256: str
    provider: str
    storage_key: str
    status: FileStatus = FileStatus.PROCESSING
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class PermissionRecord(BaseModel):
    file_id: str
    tenant_id: str
    user_id: str
    permission: Permission
    granted_by: str
    created_at: datetime


# HTTP ----------------------------------------------------------------------------------


class FileInfo(BaseModel):
    id: str
    name: str
    content_type: str
    declared_content_type: str
    size_bytes: int
    sha256: str
    status: FileStatus
    owner_id: str
    provider: str
    has_thumbnail: bool
    metadata: dict[str, JsonValue]
    # The caller's own permission on the file (admins see every file of their tenant).
    permission: Permission | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: FileRecord, permission: Permission | None) -> FileInfo:
        return cls(
            id=record.id,
            name=record.name,
            content_type=record.content_type,
            declared_content_type=record.declared_content_type,
            size_bytes=record.size_bytes,
            sha256=record.sha256,
            status=record.status,
            owner_id=record.owner_id,
            provider=record.provider,
            has_thumbnail=record.thumbnail_key is not None,
            metadata=record.metadata,
            permission=permission,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class FilesQuery(BaseModel):
    """``GET /api/file/files?limit=&cursor=``: the caller's files, newest first."""

    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None, description="The next_cursor of the previous page (empty: the first page)."
    )

    @field_validator("limit", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # Digits only, as in the URL: no sign, spaces, decimals or underscores.
        if isinstance(value, str) and not _DIGITS.fullmatch(value):
            raise ValueError(f"a whole number from 1 to {MAX_PAGE}")
        return value

    def page_cursor(self) -> PageCursor | None:
        return PageCursor.decode(self.cursor) if self.cursor else None


class FilePage(BaseModel):
    items: list[FileInfo]
    next_cursor: str | None = Field(
        default=None, description="Opaque; pass it back as ?cursor= for the next page."
    )


class PageCursor(BaseModel):
    """Keyset position: newest first by (created_at, id)."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            created_at, file_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(created_at=datetime.fromisoformat(created_at), id=str(file_id))
        except (ValueError, TypeError, binascii.Error) as error:
            raise ServiceError(
                ErrorKind.VALIDATION, "invalid cursor", fields={"cursor": "invalid cursor"}
            ) from error


class UploadAccepted(BaseModel):
    operation_id: str
    file_id: str


class OperationAccepted(BaseModel):
    operation_id: str


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="The new display name: any directories are dropped and surrounding spaces "
        f"trimmed; then 1 to {MAX_NAME} characters, no control characters."
    )

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_file_name(value)


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    permission: SharePermission = SharePermission.READ
    notify_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)


class ShareInfo(BaseModel):
    user_id: str
    permission: Permission
    granted_by: str
    created_at: datetime


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=PROVIDER_PATTERN)
    target: str = Field(pattern=PROVIDER_PATTERN)
    max_bytes_per_second: int | None = Field(default=None, ge=1024)


class QuotaInfo(BaseModel):
    tenant_id: str
    limit_bytes: int
    used_bytes: int
    available_bytes: int
