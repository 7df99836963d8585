"""The workflow service's HTTP API (server mode), under ``/api/workflow/`` with a bearer token.

Monitoring: the caller's tenant's operations (list, describe with progress, step history);
another tenant's operation does not exist here (404). Starting the cross-service workflows:
onboarding (tenant admins), compliance export and erasure (the user themself, or a tenant
admin for a member). An export archive downloads only with the exported user's own token.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from contracts.auth import Permission, permissions_for
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.operations import OperationStatus
from contracts.workflow import (
    AuditRecord,
    ComplianceEraseInput,
    ComplianceExportInput,
    UserOnboardingInput,
)
from services.common.errors import NotFound, ServiceError, workflow_errors
from services.common.http import idempotency_key, identity, json, parse_body
from services.common.openapi import IDEMPOTENCY_KEY, Doc, Endpoint, Raw
from services.common.service import ServiceRuntime
from services.workflow.activities import exports_dir
from services.workflow.models import (
    ComplianceRequest,
    HistoryStep,
    OperationDetail,
    OperationHistory,
    OperationStarted,
)
from services.workflow.store import WorkflowStore
from workflow_client.models import OperationPage


class OperationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: WorkflowType | None = None
    status: OperationStatus | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=64)
    page_size: int = Field(default=20, ge=1, le=100)
    page_token: str | None = Field(default=None, max_length=4096)


# GET /api/workflow/exports/{operation_id}: the zip archive, as an attachment.
EXPORT_ARCHIVE = Raw(
    {"application/zip": {"type": "string", "format": "binary"}},
    description="the export archive (zip)",
    headers={
        "content-disposition": {"type": "string"},
        "cache-control": {"type": "string", "const": "no-store"},
    },
)


def _require(context: RequestContext, permission: Permission) -> None:
    if permission not in permissions_for(context.roles):
        raise ServiceError(ErrorKind.AUTHORIZATION, "permission denied")


class WorkflowApi:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = WorkflowStore(runtime.db)

    def routes(self) -> Sequence[BaseRoute]:
        started = {202: OperationStarted}
        return [
            Endpoint(
                "/api/workflow/operations",
                self.list_operations,
                "GET",
                Doc(
                    "the caller's tenant's operations, newest first, a page at a time",
                    {200: OperationPage},
                    query=OperationQuery,
                ),
            ),
            Endpoint(
                "/api/workflow/operations/{operation_id}",
                self.describe,
                "GET",
                Doc(
                    "an operation of the caller's tenant, with its progress", {200: OperationDetail}
                ),
            ),
            Endpoint(
                "/api/workflow/operations/{operation_id}/history",
                self.history,
                "GET",
                Doc("an operation's progress events", {200: OperationHistory}),
            ),
            Endpoint(
                "/api/workflow/onboarding",
                self.onboard,
                "POST",
                Doc(
                    "invite a new user into the caller's tenant (user_onboarding)",
                    started,
                    body=UserOnboardingInput,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/workflow/compliance/exports",
                self.export,
                "POST",
                Doc(
                    "export a user's data: the caller's own, or a member's (admins; "
                    "compliance_export)",
                    started,
                    body=ComplianceRequest,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/workflow/compliance/erasures",
                self.erase,
                "POST",
                Doc(
                    "erase a user's data: the caller's own, or a member's (admins; "
                    "compliance_erase)",
                    started,
                    body=ComplianceRequest,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/workflow/compliance/audit",
                self.audit,
                "GET",
                Doc(
                    "the erasure audit records of the caller's tenant, newest first (admins)",
                    {200: list[AuditRecord]},
                    errors=(403,),
                ),
            ),
            Endpoint(
                "/api/workflow/exports/{operation_id}",
                self.download,
                "GET",
                Doc(
                    "the archive of a compliance export (only the exported user)",
                    {200: EXPORT_ARCHIVE},
                ),
            ),
        ]

    # Monitoring -----------------------------------------------------------------------

    async def list_operations(self, request: Request) -> Response:
        context = identity(request)
        query = OperationQuery.model_validate(dict(request.query_params))
        with workflow_errors():
            page = await self.runtime.operations.list_operations(
                context,
                workflow_type=query.type.value if query.type else None,
                status=query.status,
                user_id=query.user_id,
                page_size=query.page_size,
                page_token=query.page_token,
            )
        return json(page)

    async def describe(self, request: Request) -> Response:
        context = identity(request)
        with workflow_errors():
            snapshot = await self.runtime.operations.progress(
                context, request.path_params["operation_id"]
            )
        progress = snapshot.report.progress
        return json(
            OperationDetail(
                operation=snapshot.operation,
                current_step=progress.current_step,
                completed=progress.completed,
                total=progress.total,
            )
        )

    async def history(self, request: Request) -> Response:
        context = identity(request)
        with workflow_errors():
            snapshot = await self.runtime.operations.progress(
                context, request.path_params["operation_id"]
            )
        return json(
            OperationHistory(
                operation_id=snapshot.operation.id,
                steps=[HistoryStep.of(event) for event in snapshot.report.events],
            )
        )

    # Starting the cross-service workflows ---------------------------------------------

    async def _start(
        self,
        request: Request,
        context: RequestContext,
        workflow_type: WorkflowType,
        body: BaseModel,
    ) -> Response:
        with workflow_errors():
            operation = await self.runtime.operations.start(
                context,
                workflow_type.value,
                body,
                request_key=idempotency_key(request),
            )
        return json(OperationStarted(operation_id=operation.id), status=202)

    async def onboard(self, request: Request) -> Response:
        context = identity(request)
        body = await parse_body(request, UserOnboardingInput)
        if body.tenant_id != context.tenant_id:
            raise NotFound("tenant")
        _require(context, Permission.MEMBERS_INVITE)
        return await self._start(request, context, WorkflowType.USER_ONBOARDING, body)

    def _subject(self, context: RequestContext, body: ComplianceRequest) -> str:
        user_id = body.user_id or context.user_id
        if user_id != context.user_id:
            # Each service still checks the user is a member of the caller's tenant.
            _require(context, Permission.MEMBERS_MANAGE)
        return user_id

    async def export(self, request: Request) -> Response:
        context = identity(request)
        body = await parse_body(request, ComplianceRequest)
        user_id = self._subject(context, body)
        return await self._start(
            request,
            context,
            WorkflowType.COMPLIANCE_EXPORT,
            ComplianceExportInput(user_id=user_id),
        )

    async def erase(self, request: Request) -> Response:
        context = identity(request)
        body = await parse_body(request, ComplianceRequest)
        user_id = self._subject(context, body)
        return await self._start(
            request,
            context,
            WorkflowType.COMPLIANCE_ERASE,
            ComplianceEraseInput(
                user_id=user_id, reason=body.reason, reauthentication=body.reauthentication
            ),
        )

    async def audit(self, request: Request) -> Response:
        context = identity(request)
        _require(context, Permission.MEMBERS_MANAGE)
        return json(await self.store.audits_in(context.tenant_id))

    async def download(self, request: Request) -> Response:
        """Only the exported user, with their own token; to anyone else it does not exist."""
        context = identity(request)
        row = await self.store.get_export(request.path_params["operation_id"])
        if row is None or row.user_id != context.user_id:
            raise NotFound("export")
        path = exports_dir(self.runtime.settings) / row.file_name
        if not path.is_file():
            raise NotFound("export")
        return FileResponse(
            path,
            media_type="application/zip",
            filename=f"adx-export-{row.created_at:%Y%m%d}.zip",
            headers={"cache-control": "no-store"},
        )


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return WorkflowApi(runtime).routes()
