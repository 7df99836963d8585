"""A copy of ``compliance_export`` with two steps swapped: the user service is asked for its
part before the tenant service. Kept here to prove the replay tests catch such a change; it
must never be registered on a worker. No pytest imports: the workflow sandbox re-imports this
module."""

from __future__ import annotations

from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.names import WorkflowType
    from contracts.progress import EventKind
    from contracts.workflow import (
        ComplianceExportInput,
        ComplianceExportResult,
        UserDataExport,
        UserDataRequest,
        WorkflowActivities,
        WriteArchiveInput,
    )
    from services.common.progress import ProgressLog
    from services.common.steps import FORWARD, ProgressWorkflow, Steps, caller
    from services.workflow.workflows import EXPORT_SOURCES

# The product asks tenant, user, auth; this copy asks user, tenant, auth.
REORDERED_SOURCES = (EXPORT_SOURCES[1], EXPORT_SOURCES[0], *EXPORT_SOURCES[2:])


@workflow.defn(name=WorkflowType.COMPLIANCE_EXPORT.value)
class ReorderedComplianceExportWorkflow(ProgressWorkflow):
    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(REORDERED_SOURCES) + 1)

    @workflow.run
    async def run(self, input: ComplianceExportInput) -> ComplianceExportResult:
        context = caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        self._progress.record(EventKind.STARTED)
        parts: list[UserDataExport] = []
        steps = Steps(self._progress)
        for source in REORDERED_SOURCES:
            part = await steps.step(
                f"export_{source.service}", partial(steps.read, source, request, options=FORWARD)
            )
            parts.append(part)
        archive = await steps.step(
            "write_archive",
            lambda: steps.call(
                WorkflowActivities.WRITE_EXPORT_ARCHIVE,
                WriteArchiveInput(
                    request_id=request_id,
                    user_id=input.user_id,
                    tenant_id=context.tenant_id,
                    parts=parts,
                ),
                local=True,
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
