"""The file service's settings, in one model with explicit defaults.

``from_settings`` is the only place that reads ``adx.settings.Settings``: when the ``file_*``
fields are added there, each line below points at its field (env ``ADX_FILE_...``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from adx.settings import Settings

MIB = 1024 * 1024
GIB = 1024 * MIB

DEFAULT_MAX_UPLOAD_BYTES = 512 * MIB
DEFAULT_QUOTA_BYTES = 1 * GIB

# Sniffed types a tenant may store. Executables and scripts are not in it; anything that is
# not recognised and is not text counts as application/octet-stream.
DEFAULT_ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/markdown",
        "application/json",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "audio/mpeg",
        "audio/ogg",
        "audio/x-wav",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "application/octet-stream",
    }
)

# The names storage providers are registered under; both are local roots by default, so a
# migration between them moves real files.
PRIMARY_PROVIDER = "local"
ARCHIVE_PROVIDER = "archive"


class FileSettings(BaseModel):
    # <storage_root>/<provider>/... for the local-filesystem providers.
    storage_root: Path
    providers: tuple[str, ...] = (PRIMARY_PROVIDER, ARCHIVE_PROVIDER)
    # Where new files are stored, and where uploads are staged before the workflow takes over
    # (server and worker must both reach it).
    default_provider: str = PRIMARY_PROVIDER
    staging_provider: str = PRIMARY_PROVIDER
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, ge=1)
    default_quota_bytes: int = Field(default=DEFAULT_QUOTA_BYTES, ge=0)
    allowed_content_types: frozenset[str] = DEFAULT_ALLOWED_CONTENT_TYPES
    # clamd's Unix socket or its TCP address ("host:port"); neither: no virus scanner (refused
    # in production, a warning otherwise).
    clamd_socket: Path | None = None
    clamd_address: str | None = Field(default=None, pattern=r"^[^:\s]+:\d{1,5}$")
    scan_timeout_seconds: float = Field(default=300.0, gt=0)
    # How much is read or written at once on every streaming path.
    chunk_bytes: int = Field(default=1 * MIB, ge=4096)
    thumbnail_max_pixels: int = Field(default=256, ge=16)

    @model_validator(mode="after")
    def _providers_known(self) -> FileSettings:
        for provider in (self.default_provider, self.staging_provider):
            if provider not in self.providers:
                raise ValueError(f"storage provider {provider!r} is not one of {self.providers}")
        return self

    @property
    def clamd(self) -> Path | tuple[str, int] | None:
        """Where clamd listens: its socket, else its TCP address, else None."""
        if self.clamd_socket is not None:
            return self.clamd_socket
        if self.clamd_address is not None:
            host, _, port = self.clamd_address.rpartition(":")
            return host, int(port)
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSettings:
        return cls(
            storage_root=settings.file_storage_root or settings.data_dir / "files",
            max_upload_bytes=settings.file_max_upload_bytes,
            default_quota_bytes=settings.file_default_quota_bytes,
            allowed_content_types=(
                frozenset(settings.file_allowed_content_types)
                if settings.file_allowed_content_types is not None
                else DEFAULT_ALLOWED_CONTENT_TYPES
            ),
            clamd_socket=settings.file_clamd_socket,
            clamd_address=settings.file_clamd_address,
            scan_timeout_seconds=settings.file_scan_timeout_seconds,
        )
