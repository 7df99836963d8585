"""Tenant subgraph: ``tenantOverview``, ``tenant``, ``tenants``; ``createTenant``,
``switchTenant``, ``inviteMember``, ``changeMemberRole``, ``upgradeTenant``.

Reads are cached gateway calls; the overview aggregates parts in parallel (overview.py).
Quick mutations answer with their result (``switchTenant`` waits for ``tenant_switching``
within the tenant service's budget); long ones answer with the ``Operation`` at once."""

from __future__ import annotations

from typing import Any

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.types import Info

from bffs.tenant.overview import TenantOverview
from bffs.tenant.types import (
    MAX_ID,
    OperationAcceptedData,
    Tenant,
    TenantMemberType,
    TenantPlan,
    TenantRole,
    UserRef,
    fetch_tenants,
    load_tenant,
    members_tag,
    overview_tag,
    tenant_record_tag,
    tenants_tag,
)
from contracts.context import RequestContext
from contracts.tenant import TenantMembershipSyncResult, TenantSwitchingResult
from gateway_client import GatewayError, build_path, tenant_tag
from graph import tasks
from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, bad_input, from_gateway_error, not_found
from graph.permissions import IsAuthenticated
from graph.runtime import Subgraph
from graph.types import OperationRef

# tenant_switching runs within the tenant service's own budget (10 s); this leaves room.
SWITCH_REQUEST_TIMEOUT = 20.0


class ExchangedTokens(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    tenant_id: str
    roles: list[str]


@strawberry.input
class CreateTenantInput:
    id: str = strawberry.field(description="The tenant's slug: lower case, 2-64 characters.")
    name: str
    plan: TenantPlan = TenantPlan.FREE


@strawberry.input
class InviteMemberInput:
    user_id: strawberry.ID
    roles: list[TenantRole] = strawberry.field(default_factory=lambda: [TenantRole.MEMBER])


@strawberry.type(
    description="A membership change (tenant_membership_sync: tenant, auth grant and user "
    "projection together). Finished within the budget: the member as it is now; still "
    "running: null and the operation to follow."
)
class TenantMemberChange:
    member: TenantMemberType | None
    previous_roles: list[str] | None
    operation: OperationRef | None


@strawberry.type
class TenantSwitchResult:
    """The new session's tokens (the old session has ended) and who the caller is now."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    tenant: Tenant
    roles: list[str]
    user: UserRef


async def _operation(
    info: Info[GraphContext, Any],
    path: str,
    body: dict[str, Any],
    *,
    invalidates: list[str],
    workflow_type: str,
    idempotency_key: str | None,
) -> OperationRef:
    """POSTs a request the service answers with 202 and the operation; the tags are
    invalidated now and again when the operation has ended."""
    context = info.context
    who = await context.require_identity()
    try:
        answer = await context.deps.gateway.send_json(
            who,
            "POST",
            path,
            token=context.token,
            json=body,
            idempotency_key=idempotency_key,
            invalidates=invalidates,
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    accepted = OperationAcceptedData.model_validate(answer)
    context.deps.metrics.workflow_started(workflow_type)
    tasks.watch(context.deps, who, accepted.operation_id, invalidates)
    return OperationRef.of(accepted.operation_id)


def _member_tags(who: RequestContext, user_id: str) -> list[str]:
    """What a change of one member touches: the member list, that user's view of the tenant
    and overview."""
    return [
        members_tag(who.tenant_id),
        tenant_record_tag(who.tenant_id),
        overview_tag(who.tenant_id),
        tenant_tag(who.tenant_id, "tenants", user_id=user_id),
    ]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def tenant_overview(self, info: Info[GraphContext, Any]) -> TenantOverview:
        return TenantOverview(who=await info.context.require_identity())

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A tenant the caller belongs to; any other id is NOT_FOUND.",
    )
    async def tenant(self, info: Info[GraphContext, Any], id: strawberry.ID) -> Tenant:
        return Tenant.from_data(await load_tenant(info.context, str(id)))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def tenants(self, info: Info[GraphContext, Any]) -> list[Tenant]:
        return [Tenant.from_data(item) for item in await fetch_tenants(info.context)]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Starts tenant_provisioning; the caller becomes the new tenant's owner.",
    )
    async def create_tenant(
        self,
        info: Info[GraphContext, Any],
        input: CreateTenantInput,
        idempotency_key: str | None = None,
    ) -> OperationRef:
        who = await info.context.require_identity()
        return await _operation(
            info,
            "/api/tenant/tenants",
            {"id": input.id, "name": input.name, "plan": input.plan.value},
            invalidates=[tenants_tag(who), overview_tag(who.tenant_id, who.user_id)],
            workflow_type="tenant_provisioning",
            idempotency_key=idempotency_key,
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Moves the caller to another of their tenants: a new session (the old one "
        "ends). An operation still running after the budget is UNAVAILABLE with its "
        "operationId.",
    )
    async def switch_tenant(
        self, info: Info[GraphContext, Any], tenant_id: strawberry.ID
    ) -> TenantSwitchResult:
        context = info.context
        who = await context.require_identity()
        target = str(tenant_id)
        if not 0 < len(target) <= MAX_ID:
            raise not_found("tenant")
        gateway = context.deps.gateway
        stale = [
            tenants_tag(who),
            overview_tag(who.tenant_id, who.user_id),
            tenant_tag(target, "tenants", user_id=who.user_id),
            overview_tag(target, who.user_id),
        ]
        try:
            answer = await gateway.send_json(
                who,
                "POST",
                "/api/tenant/switch",
                token=context.token,
                json={"tenant_id": target},
                invalidates=stale,
                request_timeout=SWITCH_REQUEST_TIMEOUT,
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        context.deps.metrics.workflow_started("tenant_switching")
        if isinstance(answer, dict) and "exchange_code" not in answer:
            accepted = OperationAcceptedData.model_validate(answer)
            tasks.watch(context.deps, who, accepted.operation_id, stale)
            raise ClientError(
                ErrorCode.UNAVAILABLE,
                "the switch is taking longer than expected; follow the operation",
                operationId=accepted.operation_id,
            )
        switched = TenantSwitchingResult.model_validate(answer)
        try:
            # The code is the credential here: no bearer token goes with it.
            exchanged = await gateway.send_json(
                None,
                "POST",
                "/api/auth/sessions/exchange",
                token=None,
                json={"code": switched.exchange_code},
                correlation_id=context.correlation_id,
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        tokens = ExchangedTokens.model_validate(exchanged)
        return TenantSwitchResult(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
            session_id=tokens.session_id,
            tenant=Tenant.of(switched.tenant.tenant, tokens.roles),
            roles=list(tokens.roles),
            user=UserRef(id=strawberry.ID(who.user_id)),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Adds an existing user to the tenant the caller acts in (admins): tenant "
        "membership, auth grant and user projection in one operation.",
    )
    async def invite_member(
        self, info: Info[GraphContext, Any], input: InviteMemberInput
    ) -> TenantMemberChange:
        context = info.context
        who = await context.require_identity()
        user_id = str(input.user_id)
        if not input.roles:
            raise bad_input("at least one role", [{"field": "input.roles", "message": "empty"}])
        try:
            answer = await context.deps.gateway.send_json(
                who,
                "POST",
                build_path("/api/tenant/tenants/{tenant_id}/members", tenant_id=who.tenant_id),
                token=context.token,
                json={"user_id": user_id, "roles": [role.value for role in input.roles]},
                invalidates=_member_tags(who, user_id),
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        return _member_change(context, who, answer, _member_tags(who, user_id))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Sets a member's roles in the tenant the caller acts in (admins; owners "
        "for owners).",
    )
    async def change_member_role(
        self, info: Info[GraphContext, Any], user_id: strawberry.ID, roles: list[TenantRole]
    ) -> TenantMemberChange:
        context = info.context
        who = await context.require_identity()
        if not roles:
            raise bad_input("at least one role", [{"field": "roles", "message": "empty"}])
        tags = [*_member_tags(who, str(user_id)), overview_tag(who.tenant_id, str(user_id))]
        try:
            answer = await context.deps.gateway.send_json(
                who,
                "PATCH",
                build_path(
                    "/api/tenant/tenants/{tenant_id}/members/{user_id}",
                    tenant_id=who.tenant_id,
                    user_id=str(user_id),
                ),
                token=context.token,
                json={"roles": [role.value for role in roles]},
                invalidates=tags,
            )
        except ValueError as error:  # an id that cannot be a path segment
            raise not_found("member") from error
        except GatewayError as error:
            raise from_gateway_error(error) from error
        return _member_change(context, who, answer, tags)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Starts tenant_upgrade for the tenant the caller acts in (owner only).",
    )
    async def upgrade_tenant(
        self, info: Info[GraphContext, Any], plan: TenantPlan, idempotency_key: str | None = None
    ) -> OperationRef:
        who = await info.context.require_identity()
        return await _operation(
            info,
            build_path("/api/tenant/tenants/{tenant_id}/upgrade", tenant_id=who.tenant_id),
            {"plan": plan.value},
            invalidates=[tenant_record_tag(who.tenant_id), overview_tag(who.tenant_id)],
            workflow_type="tenant_upgrade",
            idempotency_key=idempotency_key,
        )


def _member_change(
    context: GraphContext, who: RequestContext, answer: Any, tags: list[str]
) -> TenantMemberChange:
    """The service's 200 (the sync's result) or 202 (the running operation)."""
    try:
        if isinstance(answer, dict) and "operation_id" in answer:
            accepted = OperationAcceptedData.model_validate(answer)
            tasks.watch(context.deps, who, accepted.operation_id, tags)
            return TenantMemberChange(
                member=None, previous_roles=None, operation=OperationRef.of(accepted.operation_id)
            )
        result = TenantMembershipSyncResult.model_validate(answer)
    except ValidationError as error:
        raise ClientError(ErrorCode.INTERNAL, "internal error") from error
    return TenantMemberChange(
        member=TenantMemberType.of(result.member) if result.member else None,
        previous_roles=result.previous_roles,
        operation=None,
    )


SUBGRAPH = Subgraph(name="tenant", query=Query, mutation=Mutation, types=(Tenant, UserRef))
