"""The workflow service (the cross-service worker) on the wire: its workflows' inputs and
results, its activity names, and the data-subject models every service's export/erase
activities share (defined with the tenant contract, re-exported here for the others).

Evolve compatibly: add optional fields, never rename or remove.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from contracts.activities import ActivityRef
from contracts.names import TaskQueue
from contracts.tenant import UserDataErased, UserDataExport, UserDataRequest
from contracts.user import Locale, Timezone

__all__ = [
    "DEFAULT_INVITATION_EXPIRY_SECONDS",
    "AuditRecord",
    "ComplianceEraseInput",
    "ComplianceEraseResult",
    "ComplianceExportInput",
    "ComplianceExportResult",
    "EraseAuditInput",
    "ExportArchive",
    "FinishAuditInput",
    "OnboardingRoles",
    "StartAuditInput",
    "UserDataErased",
    "UserDataExport",
    "UserDataRequest",
    "UserOnboardingInput",
    "UserOnboardingResult",
    "WorkflowActivity",
    "WriteArchiveInput",
]

DEFAULT_INVITATION_EXPIRY_SECONDS = 7 * 24 * 3600


class WorkflowActivity(StrEnum):
    # The workflow service's own activities (TaskQueue.WORKFLOW).
    WRITE_EXPORT_ARCHIVE = "workflow.write_export_archive"
    START_ERASE_AUDIT = "workflow.start_erase_audit"
    RECORD_ERASE_STEP = "workflow.record_erase_step"
    FINISH_ERASE_AUDIT = "workflow.finish_erase_audit"
    ERASE_USER_DATA = "workflow.erase_user_data"


Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=320,
        pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
    ),
]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Role = Annotated[str, StringConstraints(min_length=1, max_length=50)]
OnboardingRoles = list[Role]


# user_onboarding ------------------------------------------------------------------------------


class UserOnboardingInput(BaseModel):
    """Started by an admin of ``tenant_id`` (the propagated identity): invites a new user."""

    email: Email
    display_name: DisplayName
    tenant_id: str = Field(min_length=1, max_length=64)
    roles: OnboardingRoles = Field(default_factory=lambda: ["member"], min_length=1, max_length=16)
    # The profile's own types: what is accepted here, the user service accepts.
    locale: Locale = "en"
    timezone: Timezone = "UTC"
    # Shown in the welcome email; the tenant id when absent.
    tenant_name: str | None = Field(default=None, max_length=200)
    invitation_expires_in_seconds: int = Field(
        default=DEFAULT_INVITATION_EXPIRY_SECONDS, ge=60, le=30 * 24 * 3600
    )


class UserOnboardingResult(BaseModel):
    user_id: str
    tenant_id: str
    invited: bool = True
    steps: list[str] = Field(default_factory=list)


# compliance_export ---------------------------------------------------------------------------


class ComplianceExportInput(BaseModel):
    user_id: str = Field(min_length=1, max_length=64)


class WriteArchiveInput(BaseModel):
    """The parts travel as activity results only to this activity (then the archive is on disk
    and the workflow keeps its summary)."""

    request_id: str
    user_id: str
    tenant_id: str
    parts: list[UserDataExport]


class ExportArchive(BaseModel):
    request_id: str
    user_id: str
    path_name: str  # file name under <data_dir>/exports
    size_bytes: int
    sha256: str
    # service -> table -> rows in the archive
    counts: dict[str, dict[str, int]]


class ComplianceExportResult(BaseModel):
    request_id: str
    user_id: str
    download_path: str
    size_bytes: int
    sha256: str
    services: list[str]
    counts: dict[str, dict[str, int]]


# compliance_erase ----------------------------------------------------------------------------


class ComplianceEraseInput(BaseModel):
    user_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=300)
    # The user's own erasure needs a fresh proof of their password (POST
    # /api/auth/reauthenticate): single use, spent by the operation's first step.
    reauthentication: str | None = Field(default=None, min_length=1, max_length=200)


class StartAuditInput(BaseModel):
    request_id: str
    user_id: str
    tenant_id: str
    reason: str | None = None


class EraseAuditInput(BaseModel):
    request_id: str
    result: UserDataErased


class FinishAuditInput(BaseModel):
    request_id: str
    status: str


class AuditRecord(BaseModel):
    """What survives an erasure: who asked, when, what was erased where; the subject only as a
    pseudonym (an HMAC of the user id under the service's key, not reversible)."""

    request_id: str
    subject: str
    tenant_id: str
    requested_by: str
    reason: str | None
    status: str
    requested_at: datetime
    finished_at: datetime | None = None
    # service -> table -> rows deleted or anonymised
    services: dict[str, dict[str, int]] = Field(default_factory=dict)


class ComplianceEraseResult(BaseModel):
    request_id: str
    subject: str
    services: dict[str, dict[str, int]]


class WorkflowActivities:
    """Typed references to the workflow service's activities (name, task queue, input, result):
    workflows call them through the step kernel, services.common.steps."""

    ERASE_USER_DATA = ActivityRef(
        WorkflowActivity.ERASE_USER_DATA, TaskQueue.WORKFLOW, UserDataRequest, UserDataErased
    )
    FINISH_ERASE_AUDIT = ActivityRef(
        WorkflowActivity.FINISH_ERASE_AUDIT, TaskQueue.WORKFLOW, FinishAuditInput, AuditRecord
    )
    RECORD_ERASE_STEP = ActivityRef(
        WorkflowActivity.RECORD_ERASE_STEP, TaskQueue.WORKFLOW, EraseAuditInput, type(None)
    )
    START_ERASE_AUDIT = ActivityRef(
        WorkflowActivity.START_ERASE_AUDIT, TaskQueue.WORKFLOW, StartAuditInput, AuditRecord
    )
    WRITE_EXPORT_ARCHIVE = ActivityRef(
        WorkflowActivity.WRITE_EXPORT_ARCHIVE, TaskQueue.WORKFLOW, WriteArchiveInput, ExportArchive
    )
