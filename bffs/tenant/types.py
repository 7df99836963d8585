"""The Tenant entity (owned here), members, and the reads behind them: cached gateway calls
and the per-request DataLoaders that turn N tenant or member lookups into one batch."""

from __future__ import annotations

import asyncio
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from aiodataloader import DataLoader
from pydantic import BaseModel
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts.context import RequestContext
from contracts.tenant import MemberStatus, Plan, TenantMember, TenantStatus
from contracts.tenant import Tenant as TenantModel
from gateway_client import CacheScope, GatewayError, GatewayNotFound, build_path, tag, tenant_tag
from graph.context import GraphContext
from graph.errors import ClientError, from_gateway_error, not_found

# How long reads through the gateway are served from the cache (mutations invalidate them
# sooner through their tags).
READ_TTL_SECONDS = 30.0
# A tenant id the tenant service could know (anything else is "not found" without a call).
MAX_ID = 64


# Cache tags --------------------------------------------------------------------------------
# The caller's list of tenants (cached in the tenant the caller acts in).
def tenants_tag(who: RequestContext) -> str:
    return tag(who, "tenants")


# One tenant's record as any of its members sees it (plan, quotas, name...).
def tenant_record_tag(tenant_id: str) -> str:
    return tenant_tag(tenant_id, "tenant")


# One tenant's member list.
def members_tag(tenant_id: str) -> str:
    return tenant_tag(tenant_id, "members")


# A user's aggregated overview in a tenant (user_id None: every user's in that tenant).
def overview_tag(tenant_id: str, user_id: str | None = None) -> str:
    return tenant_tag(tenant_id, "tenant-overview", user_id=user_id)


# Wire models (the tenant service's JSON) -------------------------------------------------------


class MyTenantData(BaseModel):
    tenant: TenantModel
    roles: list[str]


class TenantListData(BaseModel):
    items: list[MyTenantData]


class MemberPageData(BaseModel):
    items: list[TenantMember]


class OperationAcceptedData(BaseModel):
    operation_id: str


# Errors -----------------------------------------------------------------------------------------


# Reads through the gateway ------------------------------------------------------------------------


async def fetch_tenants(context: GraphContext) -> list[MyTenantData]:
    """The caller's tenants (with the caller's roles in each): one cached gateway call."""
    who = await context.require_identity()
    try:
        data = await context.deps.gateway.get_json(
            who,
            "/api/tenant/tenants",
            token=context.token,
            cache_ttl=READ_TTL_SECONDS,
            tags=[tenants_tag(who)],
            query_name="tenant.tenants",
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    items = TenantListData.model_validate(data).items
    # The list answers later lookups of the same tenants in this request.
    loader = tenant_loader(context)
    for item in items:
        loader.prime(item.tenant.id, item)
    return items


async def fetch_tenant(context: GraphContext, tenant_id: str) -> MyTenantData | None:
    """One tenant of the caller's, or None (another tenant's does not exist for them)."""
    who = await context.require_identity()
    if not 0 < len(tenant_id) <= MAX_ID:
        return None
    try:
        data = await context.deps.gateway.get_json(
            who,
            build_path("/api/tenant/tenants/{tenant_id}", tenant_id=tenant_id),
            token=context.token,
            cache_ttl=READ_TTL_SECONDS,
            tags=[tenant_record_tag(tenant_id), tenants_tag(who)],
            query_name="tenant.tenant",
        )
    except GatewayNotFound:
        return None
    except ValueError:  # an id that cannot be a path segment
        return None
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return MyTenantData.model_validate(data)


def tenant_loader(context: GraphContext) -> DataLoader[str, MyTenantData | None]:
    """Tenants by id, one batch per request (entity references, ``tenant(id)``, lists)."""
    return context.loader_of_each(
        "tenant.tenants", lambda tenant_id: fetch_tenant(context, tenant_id)
    )


async def load_tenant(context: GraphContext, tenant_id: str) -> MyTenantData:
    found = await tenant_loader(context).load(tenant_id)  # raises the id's error
    if found is None:
        raise not_found("tenant")
    return found


async def fetch_members(context: GraphContext, tenant_id: str) -> list[TenantMember]:
    who = await context.require_identity()
    if tenant_id != who.tenant_id:
        # The service lists members only of the tenant the caller acts in.
        raise not_found("tenant")
    try:
        data = await context.deps.gateway.get_json(
            who,
            build_path("/api/tenant/tenants/{tenant_id}/members", tenant_id=tenant_id),
            token=context.token,
            cache_ttl=READ_TTL_SECONDS,
            tags=[members_tag(tenant_id)],
            query_name="tenant.members",
            cache_scope=CacheScope.TENANT,
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return MemberPageData.model_validate(data).items


def members_loader(context: GraphContext) -> DataLoader[str, list[TenantMember] | Exception]:
    async def batch(ids: list[str]) -> list[list[TenantMember] | Exception]:
        async def one(tenant_id: str) -> list[TenantMember] | Exception:
            try:
                return await fetch_members(context, tenant_id)
            except ClientError as error:
                return error

        return list(await asyncio.gather(*(one(i) for i in ids)))

    loader: DataLoader[str, list[TenantMember] | Exception] = context.loader(
        "tenant.members", batch
    )
    return loader


# GraphQL types ------------------------------------------------------------------------------


@strawberry.federation.type(name="User", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class UserRef:
    """A reference to a user; the user subgraph owns its fields."""

    id: strawberry.ID


@strawberry.enum(name="TenantPlan")
class TenantPlan(Enum):
    FREE = "free"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"

    def model(self) -> Plan:
        return Plan(self.value)


@strawberry.enum(name="TenantStatus")
class TenantStatusValue(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@strawberry.enum(name="TenantMemberStatus")
class MemberStatusValue(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@strawberry.enum
class TenantRole(Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@strawberry.type
class Quotas:
    max_users: int
    storage_bytes: float = strawberry.field(description="Bytes (a Float: it may pass 2^31).")


@strawberry.type(name="TenantMember")
class TenantMemberType:
    user_id: strawberry.ID
    tenant_id: strawberry.ID
    roles: list[str]
    status: MemberStatusValue
    invited_by: strawberry.ID | None
    created_at: datetime

    @strawberry.field
    def user(self) -> UserRef:
        return UserRef(id=self.user_id)

    @classmethod
    def of(cls, member: TenantMember) -> TenantMemberType:
        return cls(
            user_id=strawberry.ID(member.user_id),
            tenant_id=strawberry.ID(member.tenant_id),
            roles=list(member.roles),
            status=MemberStatusValue(MemberStatus(member.status).value),
            invited_by=strawberry.ID(member.invited_by) if member.invited_by else None,
            created_at=member.created_at,
        )


@strawberry.federation.type(name="Tenant", keys=["id"])
class Tenant:
    """A tenant the caller belongs to, as the caller sees it."""

    id: strawberry.ID
    name: str
    plan: TenantPlan
    status: TenantStatusValue
    settings: JSON
    quotas: Quotas | None
    created_at: datetime
    roles: list[str] = strawberry.field(description="The caller's roles in this tenant.")

    @strawberry.field(description="Whether the caller's token acts in this tenant.")
    async def is_current(self, info: Info[GraphContext, Any]) -> bool:
        who = await info.context.require_identity()
        return who.tenant_id == str(self.id)

    @strawberry.field(
        description="The members (only of the tenant the caller acts in; else NOT_FOUND)."
    )
    async def members(self, info: Info[GraphContext, Any]) -> list[TenantMemberType]:
        found = await members_loader(info.context).load(str(self.id))
        if isinstance(found, Exception):
            raise found
        return [TenantMemberType.of(m) for m in found]

    @classmethod
    def of(cls, tenant: TenantModel, roles: list[str]) -> Tenant:
        return cls(
            id=strawberry.ID(tenant.id),
            name=tenant.name,
            plan=TenantPlan(Plan(tenant.plan).value),
            status=TenantStatusValue(TenantStatus(tenant.status).value),
            settings=cast(JSON, tenant.settings),
            quotas=Quotas(
                max_users=tenant.quotas.max_users, storage_bytes=tenant.quotas.storage_bytes
            )
            if tenant.quotas
            else None,
            created_at=tenant.created_at,
            roles=list(roles),
        )

    @classmethod
    def from_data(cls, data: MyTenantData) -> Tenant:
        return cls.of(data.tenant, data.roles)

    @classmethod
    async def resolve_reference(cls, info: Info[GraphContext, Any], id: strawberry.ID) -> Tenant:
        return cls.from_data(await load_tenant(info.context, str(id)))
