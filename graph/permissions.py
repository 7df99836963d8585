"""Permission classes for fields: who may resolve them."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode


class IsAuthenticated(BasePermission):
    message = "authentication required"

    async def has_permission(
        self, source: Any, info: Info[GraphContext, Any], **kwargs: Any
    ) -> bool:
        return await info.context.identity() is not None

    def on_unauthorized(self) -> None:
        raise ClientError(ErrorCode.UNAUTHENTICATED, self.message)


class IsTenantAdmin(BasePermission):
    """The caller is an owner or admin of the tenant the token acts in."""

    message = "only a tenant owner or admin may do this"
    ROLES = frozenset({"owner", "admin"})

    async def has_permission(
        self, source: Any, info: Info[GraphContext, Any], **kwargs: Any
    ) -> bool:
        identity = await info.context.require_identity()
        return bool(self.ROLES.intersection(identity.roles))

    def on_unauthorized(self) -> None:
        raise ClientError(ErrorCode.FORBIDDEN, self.message)
