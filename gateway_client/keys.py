"""Cache keys and invalidation tags, scoped by tenant and user.

Every component is percent-encoded (``quote(..., safe="")``), so no id can contain the ``:``
separators or the ``*`` marker of tenant-shared entries: a key or tag built for one tenant or
user can never equal one built for another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from pydantic_core import to_jsonable_python

from contracts.context import RequestContext

# quote(..., safe="") always encodes "*", so no encoded user id equals this marker.
TENANT_SHARED = "*"


class CacheScope(StrEnum):
    """Who may read an entry: only the user who caused it, or every user of the tenant."""

    USER = "user"
    TENANT = "tenant"


def _part(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    return quote(value, safe="")


def canonical_json(value: Any) -> str:
    """The same JSON text for equal arguments, whatever the order of their keys."""
    return json.dumps(
        to_jsonable_python(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class CacheKey:
    """The key of one cached answer: query, tenant, user (or the tenant-shared marker) and a
    hash of the arguments and the caller's roles (an answer may depend on the roles)."""

    query: str
    tenant_id: str
    user_id: str | None  # None: shared by every user of the tenant
    digest: str

    @classmethod
    def build(
        cls,
        query: str,
        context: RequestContext,
        args: Mapping[str, Any] | None = None,
        *,
        scope: CacheScope = CacheScope.USER,
    ) -> CacheKey:
        payload = {"args": dict(args or {}), "roles": sorted(set(context.roles))}
        digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()
        return cls(
            query=query,
            tenant_id=context.tenant_id,
            user_id=context.user_id if scope is CacheScope.USER else None,
            digest=digest,
        )

    def __str__(self) -> str:
        user = TENANT_SHARED if self.user_id is None else _part(self.user_id, "user_id")
        return (
            f"q:{_part(self.query, 'query')}:t:{_part(self.tenant_id, 'tenant_id')}"
            f":u:{user}:{self.digest}"
        )


def tenant_tag(tenant_id: str, name: str, *, user_id: str | None = None) -> str:
    """``tenant:<tid>:<name>`` (tenant-wide) or ``tenant:<tid>:user:<uid>:<name>``."""
    tenant = _part(tenant_id, "tenant_id")
    if user_id is None:
        return f"tenant:{tenant}:{_part(name, 'name')}"
    return f"tenant:{tenant}:user:{_part(user_id, 'user_id')}:{_part(name, 'name')}"


def tag(
    context: RequestContext,
    name: str,
    scope: CacheScope = CacheScope.USER,
    *,
    user_id: str | None = None,
) -> str:
    """A tag in the caller's tenant: the caller's own (``user_id`` picks another user of the
    same tenant, e.g. an admin changing someone's profile) or tenant-wide."""
    if scope is CacheScope.TENANT:
        if user_id is not None:
            raise ValueError("a tenant-wide tag names no user")
        return tenant_tag(context.tenant_id, name)
    return tenant_tag(context.tenant_id, name, user_id=user_id or context.user_id)
