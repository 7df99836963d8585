"""Names on the wire. A rename here is a breaking change for running workflows."""

from __future__ import annotations

from enum import StrEnum


class TaskQueue(StrEnum):
    AUTH = "auth-task-queue"
    USER = "user-task-queue"
    FILE = "file-task-queue"
    WORKFLOW = "workflow-task-queue"
    TENANT = "tenant-task-queue"


class WorkflowType(StrEnum):
    # auth service
    USER_REGISTRATION = "user_registration"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a workflow name)
    MFA_SETUP = "mfa_setup"
    # user service
    USER_PROFILE_SYNC = "user_profile_sync"
    USER_DEACTIVATION = "user_deactivation"
    BULK_USER_OPERATION = "bulk_user_operation"
    GET_USER_PROFILE = "get_user_profile"
    GET_RECENT_ACTIVITY = "get_recent_activity"
    # tenant service
    TENANT_PROVISIONING = "tenant_provisioning"
    TENANT_SWITCHING = "tenant_switching"
    TENANT_UPGRADE = "tenant_upgrade"
    TENANT_SUSPENSION = "tenant_suspension"
    GET_TENANT_DATA = "get_tenant_data"
    TENANT_MEMBERSHIP_SYNC = "tenant_membership_sync"
    # file service
    FILE_UPLOAD = "file_upload"
    FILE_PROCESSING = "file_processing"
    FILE_SHARING = "file_sharing"
    FILE_MIGRATION = "file_migration"
    GET_RECENT_FILES = "get_recent_files"
    # cross-service worker
    USER_ONBOARDING = "user_onboarding"
    COMPLIANCE_EXPORT = "compliance_export"
    COMPLIANCE_ERASE = "compliance_erase"


# The worker that runs each workflow type.
WORKFLOW_TASK_QUEUES: dict[WorkflowType, TaskQueue] = {
    WorkflowType.USER_REGISTRATION: TaskQueue.AUTH,
    WorkflowType.PASSWORD_RESET: TaskQueue.AUTH,
    WorkflowType.MFA_SETUP: TaskQueue.AUTH,
    WorkflowType.USER_PROFILE_SYNC: TaskQueue.USER,
    WorkflowType.USER_DEACTIVATION: TaskQueue.USER,
    WorkflowType.BULK_USER_OPERATION: TaskQueue.USER,
    WorkflowType.GET_USER_PROFILE: TaskQueue.USER,
    WorkflowType.GET_RECENT_ACTIVITY: TaskQueue.USER,
    WorkflowType.TENANT_PROVISIONING: TaskQueue.TENANT,
    WorkflowType.TENANT_SWITCHING: TaskQueue.TENANT,
    WorkflowType.TENANT_UPGRADE: TaskQueue.TENANT,
    WorkflowType.TENANT_SUSPENSION: TaskQueue.TENANT,
    WorkflowType.GET_TENANT_DATA: TaskQueue.TENANT,
    WorkflowType.TENANT_MEMBERSHIP_SYNC: TaskQueue.TENANT,
    WorkflowType.FILE_UPLOAD: TaskQueue.FILE,
    WorkflowType.FILE_PROCESSING: TaskQueue.FILE,
    WorkflowType.FILE_SHARING: TaskQueue.FILE,
    WorkflowType.FILE_MIGRATION: TaskQueue.FILE,
    WorkflowType.GET_RECENT_FILES: TaskQueue.FILE,
    WorkflowType.USER_ONBOARDING: TaskQueue.WORKFLOW,
    WorkflowType.COMPLIANCE_EXPORT: TaskQueue.WORKFLOW,
    WorkflowType.COMPLIANCE_ERASE: TaskQueue.WORKFLOW,
}


class QueryName(StrEnum):
    # Every workflow answers it with a contracts.progress.ProgressReport.
    PROGRESS = "progress"
    # mfa_setup answers it with the outcome of one confirmation attempt.
    MFA_ATTEMPT = "mfa_attempt"


class SignalName(StrEnum):
    VERIFY_EMAIL = "verify_email"
    CONFIRM_MFA = "confirm_mfa"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a signal name)
    RESTORE_USER = "restore_user"
    RESUME_TENANT = "resume_tenant"


class UpdateName(StrEnum):
    # Reserved for the live-progress long poll; declared here so the name is never reused.
    WAIT_FOR_PROGRESS = "wait_for_progress"


class SearchAttribute(StrEnum):
    """Custom search attributes (Keyword) registered in every namespace."""

    TENANT_ID = "TenantId"
    USER_ID = "UserId"
    OPERATION_TYPE = "OperationType"
