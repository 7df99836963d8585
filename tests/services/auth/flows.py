"""Workflows of other services, in miniature: they call the auth activities by name on
auth-task-queue the way the tenant-switching saga and other callers will. No pytest imports:
the workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, JsonValue
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.auth import (
        AuthActivity,
        CheckPermissionsInput,
        CreatedSession,
        CreateSessionInput,
        CredentialsCheck,
        Permission,
        PermissionCheck,
        SessionChange,
        SessionInput,
        ValidateCredentialsInput,
    )
    from contracts.names import TaskQueue
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY
    from services.common.saga import Saga

LOAD_TENANT_DATA = "test.load_tenant_data"


class CallInput(BaseModel):
    activity: str
    payload: dict[str, JsonValue]


class CallOutcome(BaseModel):
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    non_retryable: bool | None = None
    retry_state: str | None = None


class SwitchInput(BaseModel):
    session_id: str
    tenant_id: str
    fail_loading: bool = False


class SwitchResult(BaseModel):
    session_id: str
    exchange_code: str


@activity.defn(name=LOAD_TENANT_DATA)
async def load_tenant_data(tenant_id: str) -> None:
    raise ApplicationError(
        "tenant data unavailable", type="ExternalServiceError", non_retryable=True
    )


async def _auth(
    name: AuthActivity, arg: BaseModel, result_type: type[Any], *, undo: bool = False
) -> Any:
    return await workflow.execute_activity(
        name.value,
        arg,
        task_queue=TaskQueue.AUTH.value,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=COMPENSATION_RETRY if undo else DEFAULT_RETRY,
        result_type=result_type,
    )


@workflow.defn(name="auth_test_call")
class CallAuthWorkflow:
    """Calls one auth activity with the starter's identity; reports its result or error."""

    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        try:
            result = await workflow.execute_activity(
                input.activity,
                input.payload,
                task_queue=TaskQueue.AUTH.value,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DEFAULT_RETRY,
                result_type=dict,
            )
        except ActivityError as error:
            cause = error.cause
            assert isinstance(cause, ApplicationError)
            return CallOutcome(
                error_type=cause.type,
                error_message=cause.message,
                non_retryable=cause.non_retryable,
                retry_state=error.retry_state.name if error.retry_state else None,
            )
        return CallOutcome(result=result)


@workflow.defn(name="auth_test_tenant_switch")
class TenantSwitchWorkflow:
    """The tenant-switching saga's auth part: check access, open a session in the target
    tenant, end the old one; undone if loading the tenant's data fails."""

    @workflow.run
    async def run(self, input: SwitchInput) -> SwitchResult:
        saga = Saga(ProgressLog(total=5))
        new_session = str(workflow.uuid4())
        try:
            await saga.step(
                "validate_credentials",
                lambda: _auth(
                    AuthActivity.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(
                        session_id=input.session_id, tenant_id=input.tenant_id
                    ),
                    CredentialsCheck,
                ),
            )
            await saga.step(
                "check_permissions",
                lambda: _auth(
                    AuthActivity.CHECK_PERMISSIONS,
                    CheckPermissionsInput(
                        permissions=[Permission.TENANT_READ],
                        tenant_id=input.tenant_id,
                        require=True,
                    ),
                    PermissionCheck,
                ),
            )
            created: CreatedSession = await saga.step(
                "create_session",
                lambda: _auth(
                    AuthActivity.CREATE_SESSION,
                    CreateSessionInput(session_id=new_session, tenant_id=input.tenant_id),
                    CreatedSession,
                ),
                lambda: _auth(
                    AuthActivity.ROLLBACK_SESSION_CREATION,
                    SessionInput(session_id=new_session),
                    SessionChange,
                    undo=True,
                ),
            )
            await saga.step(
                "invalidate_session",
                lambda: _auth(
                    AuthActivity.INVALIDATE_SESSION,
                    SessionInput(session_id=input.session_id),
                    SessionChange,
                ),
                lambda: _auth(
                    AuthActivity.RESTORE_PREVIOUS_SESSION,
                    SessionInput(session_id=input.session_id),
                    SessionChange,
                    undo=True,
                ),
            )
            if input.fail_loading:
                await saga.step(
                    "load_tenant_data",
                    lambda: workflow.execute_activity(
                        LOAD_TENANT_DATA,
                        input.tenant_id,
                        start_to_close_timeout=timedelta(seconds=10),
                        retry_policy=DEFAULT_RETRY,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from None
        return SwitchResult(session_id=created.session_id, exchange_code=created.exchange_code)


WORKFLOWS: list[type] = [CallAuthWorkflow, TenantSwitchWorkflow]
ACTIVITIES = [load_tenant_data]
