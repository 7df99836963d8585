"""Where a file's bytes live inside a provider. Pure and deterministic: workflows compute
the same keys as activities, so a compensation knows what to delete before the step it undoes
has reported anything."""

from __future__ import annotations

import re
import uuid

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:=-]{0,127}$")
_NAMESPACE = uuid.UUID("3e0f6a52-94c1-4f3e-8d2b-6a1f0c7e9b44")


def tenant_segment(tenant_id: str) -> str:
    """The tenant id itself when it is a safe path segment, else a stable id derived from it."""
    if _SAFE.match(tenant_id) and ".." not in tenant_id:
        return tenant_id
    return f"t-{uuid.uuid5(_NAMESPACE, tenant_id).hex}"


def staging_prefix(tenant_id: str, file_id: str) -> str:
    return f"staging/{tenant_segment(tenant_id)}/{file_id}/"


def staging_key(tenant_id: str, file_id: str, attempt: str) -> str:
    """One key per upload request: two requests racing with the same idempotency key (same
    file id) never write into each other's bytes."""
    return f"{staging_prefix(tenant_id, file_id)}{attempt}"


def file_key(tenant_id: str, file_id: str) -> str:
    return f"files/{tenant_segment(tenant_id)}/{file_id}"


def thumbnail_key(tenant_id: str, file_id: str) -> str:
    return f"thumbnails/{tenant_segment(tenant_id)}/{file_id}.png"
