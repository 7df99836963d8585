"""The tenant service's HTTP API (server mode), under ``/api/tenant/`` with a bearer token.

A tenant the caller does not belong to does not exist here (404); a member who may not do
something is 403. Provisioning, switching, upgrades, suspension and member changes (added,
roles changed, removed: tenant_membership_sync) run as workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from temporalio.service import RPCError, RPCStatusCode

from adx.identity import TokenType, bearer_token
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.names import SignalName, WorkflowType
from contracts.tenant import (
    MANAGER_ROLES,
    MembershipChange,
    MemberStatus,
    ResumeTenantSignal,
    Tenant,
    TenantMember,
    TenantMembershipSyncInput,
    TenantMembershipSyncResult,
    TenantProvisioningInput,
    TenantStatus,
    TenantSuspensionInput,
    TenantSwitchingInput,
    TenantSwitchingResult,
    TenantUpgradeInput,
)
from services.common.errors import NotFound, ServiceError, workflow_errors
from services.common.http import idempotency_key, identity, json, parse_body
from services.common.openapi import IDEMPOTENCY_KEY, Doc, Endpoint
from services.common.service import ServiceRuntime
from services.tenant.models import (
    AddMemberRequest,
    ChangeRolesRequest,
    CreateTenantRequest,
    InvoicePage,
    MemberPage,
    MyTenant,
    OperationAccepted,
    SuspendRequest,
    SwitchRequest,
    TenantList,
    UpdateTenantRequest,
    UpgradeRequest,
)
from services.tenant.store import TenantStore

# How long POST /switch waits for tenant_switching before answering 202 with the operation.
SWITCH_BUDGET = timedelta(seconds=10)
# The same for the member endpoints and tenant_membership_sync.
MEMBERSHIP_BUDGET = timedelta(seconds=5)
LAST_OWNER = "the last owner cannot be demoted or removed"
SYNCED = (
    "200 with tenant_membership_sync's result when it finishes within its budget, else 202 "
    "with the operation to follow."
)


class TenantApi:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = TenantStore(runtime.db)

    def routes(self) -> Sequence[BaseRoute]:
        base = "/api/tenant/tenants"
        started = {202: OperationAccepted}
        synced = {200: TenantMembershipSyncResult, **started}
        return [
            Endpoint(
                base,
                self.list_tenants,
                "GET",
                Doc("the tenants where the caller is an active member", {200: TenantList}),
            ),
            Endpoint(
                base,
                self.create_tenant,
                "POST",
                Doc(
                    "create a tenant owned by the caller (tenant_provisioning)",
                    started,
                    body=CreateTenantRequest,
                    errors=(409,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}",
                self.get_tenant,
                "GET",
                Doc("a tenant of the caller's, with the caller's roles there", {200: MyTenant}),
            ),
            Endpoint(
                base + "/{tenant_id}",
                self.update_tenant,
                "PATCH",
                Doc(
                    "rename the caller's tenant or replace its settings (admins)",
                    {200: Tenant},
                    body=UpdateTenantRequest,
                    errors=(403,),
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/members",
                self.list_members,
                "GET",
                Doc("the members of the caller's tenant", {200: MemberPage}),
            ),
            Endpoint(
                base + "/{tenant_id}/members",
                self.add_member,
                "POST",
                Doc(
                    "add a member (admins; owners to add owners; tenant_membership_sync)",
                    synced,
                    body=AddMemberRequest,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                    description=SYNCED,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/members/{user_id}",
                self.change_roles,
                "PATCH",
                Doc(
                    "replace a member's roles (admins; owners for owners; tenant_membership_sync)",
                    synced,
                    body=ChangeRolesRequest,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                    description=SYNCED,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/members/{user_id}",
                self.remove_member,
                "DELETE",
                Doc(
                    "remove a member (admins; owners for owners; tenant_membership_sync)",
                    synced,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                    description=SYNCED,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/upgrade",
                self.upgrade,
                "POST",
                Doc(
                    "change the tenant's plan (the owner; tenant_upgrade)",
                    started,
                    body=UpgradeRequest,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/suspend",
                self.suspend,
                "POST",
                Doc(
                    "suspend the tenant until resumed (the owner; tenant_suspension)",
                    started,
                    body=SuspendRequest,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/resume",
                self.resume,
                "POST",
                Doc(
                    "resume a suspended tenant (the owner; signals its tenant_suspension)",
                    started,
                    errors=(403, 409),
                ),
            ),
            Endpoint(
                base + "/{tenant_id}/invoices",
                self.invoices,
                "GET",
                Doc("the tenant's invoices (admins)", {200: InvoicePage}, errors=(403,)),
            ),
            Endpoint(
                "/api/tenant/switch",
                self.switch,
                "POST",
                Doc(
                    "move the caller's session to another tenant of theirs (tenant_switching)",
                    {200: TenantSwitchingResult, **started},
                    body=SwitchRequest,
                    errors=(409,),
                    headers=IDEMPOTENCY_KEY,
                    description=(
                        "200 with the new session's exchange code (for POST "
                        "/api/auth/sessions/exchange) when the switch finishes within "
                        "its budget, else 202 with the operation to follow."
                    ),
                ),
            ),
        ]

    # Helpers --------------------------------------------------------------------------

    async def _membership(self, context: RequestContext, tenant_id: str) -> TenantMember:
        """The caller's active membership in the tenant, or 'not found'."""
        member = await self.store.member(tenant_id, context.user_id)
        if member is None or member.status is not MemberStatus.ACTIVE:
            raise NotFound("tenant")
        return member

    async def _in_tenant(self, context: RequestContext, tenant_id: str) -> TenantMember:
        """Acting on a tenant's data needs a token for that tenant (the caller's session is
        in it) and a membership there; anything else is 'not found'."""
        if context.tenant_id != tenant_id:
            raise NotFound("tenant")
        return await self._membership(context, tenant_id)

    async def _manager(self, context: RequestContext, tenant_id: str) -> TenantMember:
        member = await self._in_tenant(context, tenant_id)
        if not MANAGER_ROLES.intersection(member.roles):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can do this")
        return member

    async def _owner(self, context: RequestContext, tenant_id: str) -> TenantMember:
        member = await self._in_tenant(context, tenant_id)
        if "owner" not in member.roles:
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the tenant owner can do this")
        return member

    async def _start(
        self,
        request: Request,
        context: RequestContext,
        workflow_type: WorkflowType,
        input: BaseModel,
    ) -> JSONResponse:
        with workflow_errors():
            operation = await self.runtime.operations.start(
                context,
                workflow_type.value,
                input,
                request_key=idempotency_key(request),
            )
        return json(OperationAccepted(operation_id=operation.id), status=202)

    async def _repeated(
        self, request: Request, context: RequestContext, workflow_type: WorkflowType
    ) -> Response | None:
        """A request repeated with its Idempotency-Key gets the operation the first one
        started, even once that has changed what the checks look at (plan, status...)."""
        with workflow_errors():
            operation = await self.runtime.operations.keyed(
                context, workflow_type.value, idempotency_key(request)
            )
        if operation is None:
            return None
        return json(OperationAccepted(operation_id=operation.id), status=202)

    # Tenants --------------------------------------------------------------------------

    async def list_tenants(self, request: Request) -> Response:
        context = identity(request)
        found = await self.store.tenants_of(context.user_id)
        return json(TenantList(items=[MyTenant(tenant=t, roles=m.roles) for t, m in found]))

    async def create_tenant(self, request: Request) -> Response:
        context = identity(request)
        body = await parse_body(request, CreateTenantRequest)
        if (
            repeated := await self._repeated(request, context, WorkflowType.TENANT_PROVISIONING)
        ) is not None:
            return repeated
        if await self.store.get_tenant(body.id) is not None:
            raise ServiceError(
                ErrorKind.CONFLICT, "the tenant id is already taken", fields={"id": "taken"}
            )
        return await self._start(
            request,
            context,
            WorkflowType.TENANT_PROVISIONING,
            TenantProvisioningInput(tenant_id=body.id, name=body.name, plan=body.plan),
        )

    async def get_tenant(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        member = await self._membership(context, tenant_id)
        tenant = await self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        return json(MyTenant(tenant=tenant, roles=member.roles))

    async def update_tenant(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._manager(context, tenant_id)
        body = await parse_body(request, UpdateTenantRequest)
        tenant = await self.store.update_tenant(tenant_id, body.name, body.settings)
        return json(tenant)

    # Members --------------------------------------------------------------------------

    async def list_members(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._in_tenant(context, tenant_id)
        return json(MemberPage(items=await self.store.members(tenant_id)))

    async def add_member(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        caller = await self._manager(context, tenant_id)
        body = await parse_body(request, AddMemberRequest)
        if (
            repeated := await self._repeated(request, context, WorkflowType.TENANT_MEMBERSHIP_SYNC)
        ) is not None:
            return repeated
        if "owner" in body.roles and "owner" not in caller.roles:
            raise ServiceError(ErrorKind.AUTHORIZATION, "only owners can add owners")
        if await self.store.member(tenant_id, body.user_id) is not None:
            raise ServiceError(ErrorKind.CONFLICT, "already a member", fields={"user_id": "member"})
        return await self._sync_membership(
            request,
            context,
            TenantMembershipSyncInput(
                tenant_id=tenant_id,
                user_id=body.user_id,
                change=MembershipChange.ADD,
                roles=body.roles,
            ),
        )

    async def change_roles(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        caller = await self._manager(context, tenant_id)
        user_id = request.path_params["user_id"]
        body = await parse_body(request, ChangeRolesRequest)
        target = await self.store.member(tenant_id, user_id)
        if target is None:
            raise NotFound("member")
        touches_owner = "owner" in body.roles or "owner" in target.roles
        if touches_owner and "owner" not in caller.roles:
            raise ServiceError(ErrorKind.AUTHORIZATION, "only owners can change owners")
        if await self.store.would_leave_no_owner(tenant_id, user_id, body.roles):
            raise ServiceError(ErrorKind.CONFLICT, LAST_OWNER)
        return await self._sync_membership(
            request,
            context,
            TenantMembershipSyncInput(
                tenant_id=tenant_id,
                user_id=user_id,
                change=MembershipChange.SET_ROLES,
                roles=body.roles,
            ),
        )

    async def remove_member(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        caller = await self._manager(context, tenant_id)
        if (
            repeated := await self._repeated(request, context, WorkflowType.TENANT_MEMBERSHIP_SYNC)
        ) is not None:
            return repeated
        user_id = request.path_params["user_id"]
        target = await self.store.member(tenant_id, user_id)
        if target is None:
            raise NotFound("member")
        if "owner" in target.roles and "owner" not in caller.roles:
            raise ServiceError(ErrorKind.AUTHORIZATION, "only owners can remove owners")
        if await self.store.would_leave_no_owner(tenant_id, user_id, None):
            raise ServiceError(ErrorKind.CONFLICT, LAST_OWNER)
        return await self._sync_membership(
            request,
            context,
            TenantMembershipSyncInput(
                tenant_id=tenant_id, user_id=user_id, change=MembershipChange.REMOVE
            ),
        )

    async def _sync_membership(
        self, request: Request, context: RequestContext, input: TenantMembershipSyncInput
    ) -> Response:
        """Runs tenant_membership_sync: 200 with its result when it finishes within the
        budget, else 202 with the operation to follow."""
        with workflow_errors():
            outcome = await self.runtime.operations.execute(
                context,
                WorkflowType.TENANT_MEMBERSHIP_SYNC.value,
                input,
                budget=MEMBERSHIP_BUDGET,
                result_type=TenantMembershipSyncResult,
                request_key=idempotency_key(request),
            )
        if outcome.result is None:
            return json(OperationAccepted(operation_id=outcome.operation.id), status=202)
        return json(outcome.result)

    # Operations -----------------------------------------------------------------------

    async def switch(self, request: Request) -> Response:
        """Runs tenant_switching: 200 with the new session's exchange code when it finishes
        within the budget, else 202 with the operation to follow."""
        context = identity(request)
        body = await parse_body(request, SwitchRequest)
        if body.tenant_id == context.tenant_id:
            raise ServiceError(ErrorKind.CONFLICT, "already in this tenant")
        # Refused before anything starts: another tenant does not exist for the caller.
        await self._membership(context, body.tenant_id)
        token = bearer_token(request.headers.get("authorization"))
        assert token is not None  # identity() checked it
        claims = request.app.state.verifier.verify(token, TokenType.ACCESS)
        with workflow_errors():
            outcome = await self.runtime.operations.execute(
                context,
                WorkflowType.TENANT_SWITCHING.value,
                TenantSwitchingInput(
                    user_id=context.user_id,
                    from_tenant_id=context.tenant_id,
                    to_tenant_id=body.tenant_id,
                    current_session_id=claims.sid,
                ),
                budget=SWITCH_BUDGET,
                result_type=TenantSwitchingResult,
                request_key=idempotency_key(request),
            )
        if outcome.result is None:
            return json(OperationAccepted(operation_id=outcome.operation.id), status=202)
        return json(outcome.result)

    async def upgrade(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._owner(context, tenant_id)
        body = await parse_body(request, UpgradeRequest)
        if (
            repeated := await self._repeated(request, context, WorkflowType.TENANT_UPGRADE)
        ) is not None:
            return repeated
        tenant = await self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        if tenant.plan is body.plan:
            raise ServiceError(ErrorKind.CONFLICT, f"the tenant is already on {body.plan.value}")
        return await self._start(
            request,
            context,
            WorkflowType.TENANT_UPGRADE,
            TenantUpgradeInput(tenant_id=tenant_id, plan=body.plan),
        )

    async def suspend(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._owner(context, tenant_id)
        body = await parse_body(request, SuspendRequest)
        if (
            repeated := await self._repeated(request, context, WorkflowType.TENANT_SUSPENSION)
        ) is not None:
            return repeated
        tenant = await self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        if tenant.status is TenantStatus.SUSPENDED:
            raise ServiceError(ErrorKind.CONFLICT, "the tenant is already suspended")
        return await self._start(
            request,
            context,
            WorkflowType.TENANT_SUSPENSION,
            TenantSuspensionInput(tenant_id=tenant_id, reason=body.reason),
        )

    async def resume(self, request: Request) -> Response:
        """Signals the tenant's suspension workflow (an owner of the tenant)."""
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._owner(context, tenant_id)
        tenant = await self.store.get_tenant(tenant_id)
        operation_id = await self.store.status_operation(tenant_id)
        if tenant is None or tenant.status is not TenantStatus.SUSPENDED or operation_id is None:
            raise ServiceError(ErrorKind.CONFLICT, "the tenant is not suspended")
        handle = self.runtime.operations.client.get_workflow_handle(operation_id)
        try:
            with use_context(context):
                await handle.signal(
                    SignalName.RESUME_TENANT.value,
                    ResumeTenantSignal(requested_by=context.user_id),
                )
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise ServiceError(ErrorKind.CONFLICT, "the suspension has ended") from error
            raise ServiceError(
                ErrorKind.EXTERNAL_SERVICE, "the workflow service is unavailable"
            ) from error
        return json(OperationAccepted(operation_id=operation_id), status=202)

    async def invoices(self, request: Request) -> Response:
        context = identity(request)
        tenant_id = request.path_params["tenant_id"]
        await self._manager(context, tenant_id)
        return json(InvoicePage(items=await self.store.invoices_of(tenant_id)))


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return TenantApi(runtime).routes()
