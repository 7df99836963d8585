"""``tenantOverview``: the caller's tenants, the current tenant and the caller's permissions,
three parts fetched in parallel (sibling fields resolve concurrently), each with its own
timeout and its own error: one slow or failing part leaves the others' data in the answer.

Parts are cached per user and tenant (``overview_tag``) and invalidated by the mutations that
change them; a failed part is never cached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel
from strawberry.types import Info

from bffs.tenant.types import (
    READ_TTL_SECONDS,
    MyTenantData,
    Quotas,
    Tenant,
    fetch_tenants,
    members_tag,
    overview_tag,
    tenant_record_tag,
)
from contracts.auth import permissions_for
from contracts.context import RequestContext
from contracts.names import WorkflowType
from contracts.tenant import GetTenantDataInput, TenantData
from gateway_client import CacheKey, GatewayError
from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, from_gateway_error, from_workflow_error
from workflow_client.errors import WorkflowClientError

M = TypeVar("M", bound=BaseModel)

# Seconds each part may take (the cache read included) before it is reported as unavailable.
PART_TIMEOUTS: dict[str, float] = {
    "availableTenants": 5.0,
    "currentTenant": 5.0,
    "permissions": 5.0,
}


class PermissionsData(BaseModel):
    roles: list[str]
    permissions: list[str]


def part_tags(who: RequestContext) -> list[str]:
    return [
        overview_tag(who.tenant_id, who.user_id),
        overview_tag(who.tenant_id),
        tenant_record_tag(who.tenant_id),
        members_tag(who.tenant_id),
    ]


async def _cached(
    context: GraphContext,
    who: RequestContext,
    part: str,
    model: type[M],
    produce: Callable[[], Awaitable[M]],
) -> M:
    """The part from the cache, else produced and stored (unless a tag was invalidated
    meanwhile). Cache failures are misses: the cache never fails a part."""
    cache = context.deps.gateway.cache
    key = str(CacheKey.build(f"tenant.overview.{part}", who))
    tags = part_tags(who)
    cached = await cache.get(key)
    if cached is not None:
        try:
            return model.model_validate_json(cached)
        except ValueError:
            pass  # a corrupt entry is a miss
    stamp = await cache.stamp(tags)
    value = await produce()
    if stamp is not None:
        await cache.set(key, value.model_dump_json().encode(), READ_TTL_SECONDS, tags, stamp=stamp)
    return value


async def _part(part: str, work: Callable[[], Awaitable[M]]) -> M:
    """One part within its timeout; any failure is that part's error only."""
    try:
        async with asyncio.timeout(PART_TIMEOUTS[part]):
            return await work()
    except TimeoutError as error:
        raise ClientError(
            ErrorCode.UNAVAILABLE, f"{part} did not answer in time", part=part
        ) from error
    except ClientError as error:
        error.extensions.setdefault("part", part)
        raise


class TenantListPart(BaseModel):
    items: list[MyTenantData]


async def _tenants(context: GraphContext) -> TenantListPart:
    return TenantListPart(items=await fetch_tenants(context))


async def _current(context: GraphContext, who: RequestContext) -> TenantData:
    # Within the part's timeout, so a slow workflow is reported as such, not cut off.
    budget = timedelta(seconds=PART_TIMEOUTS["currentTenant"] * 0.9)
    try:
        outcome = await context.deps.operations.execute(
            who,
            WorkflowType.GET_TENANT_DATA.value,
            GetTenantDataInput(tenant_id=who.tenant_id),
            budget=budget,
            result_type=TenantData,
        )
    except WorkflowClientError as error:
        raise from_workflow_error(error) from error
    context.deps.metrics.workflow_started(WorkflowType.GET_TENANT_DATA.value)
    if outcome.result is None:
        raise TimeoutError
    return outcome.result


async def _permissions(context: GraphContext, who: RequestContext) -> PermissionsData:
    """The roles of the caller's grant as the auth service holds it now (not the token's,
    which may be minutes old), and the permissions they give."""
    try:
        answer = await context.deps.gateway.send_json(
            who,
            "POST",
            "/api/auth/permissions/check",
            token=context.token,
            json={"permission": "tenant.read"},
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    roles = [str(role) for role in (answer or {}).get("roles", [])]
    return PermissionsData(roles=roles, permissions=sorted(p.value for p in permissions_for(roles)))


@strawberry.type
class CurrentTenant:
    """The tenant the caller acts in, from the ``get_tenant_data`` workflow."""

    tenant: Tenant
    member_count: int
    roles: list[str]
    quotas: Quotas | None

    @classmethod
    def of(cls, data: TenantData) -> CurrentTenant:
        return cls(
            tenant=Tenant.of(data.tenant, data.roles),
            member_count=data.member_count,
            roles=list(data.roles),
            quotas=Quotas(max_users=data.quotas.max_users, storage_bytes=data.quotas.storage_bytes)
            if data.quotas
            else None,
        )


@strawberry.type
class Permissions:
    roles: list[str]
    granted: list[str]

    @strawberry.field
    def can(self, permission: str) -> bool:
        return permission in self.granted


@strawberry.type(
    description="Each part is fetched in parallel with its own timeout; a part that fails is "
    "null with an error at its path, the others still answer."
)
class TenantOverview:
    who: strawberry.Private[RequestContext]

    @strawberry.field
    async def available_tenants(self, info: Info[GraphContext, Any]) -> list[Tenant] | None:
        context = info.context
        part = await _part(
            "availableTenants",
            lambda: _cached(
                context, self.who, "availableTenants", TenantListPart, lambda: _tenants(context)
            ),
        )
        return [Tenant.from_data(item) for item in part.items]

    @strawberry.field
    async def current_tenant(self, info: Info[GraphContext, Any]) -> CurrentTenant | None:
        context = info.context
        data = await _part(
            "currentTenant",
            lambda: _cached(
                context, self.who, "currentTenant", TenantData, lambda: _current(context, self.who)
            ),
        )
        return CurrentTenant.of(data)

    @strawberry.field
    async def permissions(self, info: Info[GraphContext, Any]) -> Permissions | None:
        context = info.context
        data = await _part(
            "permissions",
            lambda: _cached(
                context,
                self.who,
                "permissions",
                PermissionsData,
                lambda: _permissions(context, self.who),
            ),
        )
        return Permissions(roles=data.roles, granted=data.permissions)
