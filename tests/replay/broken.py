"""A copy of ``compliance_export`` with two steps swapped: the user service is asked for its
part before the tenant service. Kept here to prove the replay tests catch such a change; it
must never be registered on a worker. No pytest imports: the workflow sandbox re-imports this
module."""

from __future__ import annotations

from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.names import QueryName, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from contracts.workflow import (
        ComplianceExportInput,
        ComplianceExportResult,
        ExportArchive,
        UserDataExport,
        UserDataRequest,
        WorkflowActivity,
        WriteArchiveInput,
    )
    from services.common.progress import ProgressLog
    from services.common.retry import DEFAULT_RETRY
    from services.common.saga import Saga
    from services.workflow.workflows import ACTIVITY_TIMEOUT, EXPORT_SOURCES, _call, _caller

# The product asks tenant, user, auth; this copy asks user, tenant, auth.
REORDERED_SOURCES = (EXPORT_SOURCES[1], EXPORT_SOURCES[0], *EXPORT_SOURCES[2:])


@workflow.defn(name=WorkflowType.COMPLIANCE_EXPORT.value)
class ReorderedComplianceExportWorkflow:
    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(REORDERED_SOURCES) + 1)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: ComplianceExportInput) -> ComplianceExportResult:
        context = _caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        self._progress.record(EventKind.STARTED)
        parts: list[UserDataExport] = []
        saga = Saga(self._progress)
        for name, queue in REORDERED_SOURCES:
            service = name.split(".", 1)[0]
            part = await saga.step(
                f"export_{service}",
                partial(_call, name, request, UserDataExport, queue),
            )
            parts.append(part)
        archive = await saga.step(
            "write_archive",
            lambda: workflow.execute_local_activity(
                WorkflowActivity.WRITE_EXPORT_ARCHIVE,
                WriteArchiveInput(
                    request_id=request_id,
                    user_id=input.user_id,
                    tenant_id=context.tenant_id,
                    parts=parts,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=DEFAULT_RETRY,
                result_type=ExportArchive,
            ),
        )
        return ComplianceExportResult(
            request_id=request_id,
            user_id=input.user_id,
            download_path=f"/api/workflow/exports/{request_id}",
            size_bytes=archive.size_bytes,
            sha256=archive.sha256,
            services=sorted(archive.counts),
            counts=archive.counts,
        )
