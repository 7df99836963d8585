"""Workflows of other services, in miniature: they call the auth activities by name on
auth-task-queue the way the tenant-switching saga and other callers will. No pytest imports:
the workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ActivityRef
    from contracts.auth import (
        AuthActivities,
        CheckPermissionsInput,
        CreatedSession,
        CreateSessionInput,
        Permission,
        SessionInput,
        ValidateCredentialsInput,
    )
    from contracts.names import TaskQueue
    from services.common.progress import ProgressLog
    from services.common.steps import ProgressWorkflow, Steps

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


class Payload(BaseModel):
    """Any activity's input, as given: its fields are sent as they are."""

    model_config = ConfigDict(extra="allow")


class SwitchInput(BaseModel):
    session_id: str
    tenant_id: str
    fail_loading: bool = False


class SwitchResult(BaseModel):
    session_id: str
    exchange_code: str


class TenantDataInput(BaseModel):
    tenant_id: str


@activity.defn(name=LOAD_TENANT_DATA)
async def load_tenant_data(input: TenantDataInput) -> None:
    raise ApplicationError(
        "tenant data unavailable", type="ExternalServiceError", non_retryable=True
    )


# A local activity of the caller's own worker: a reference needs a task queue, and the caller's
# is made up per test module (the kernel ignores it for a local activity).
LOAD_TENANT_DATA_REF = ActivityRef(LOAD_TENANT_DATA, TaskQueue.TENANT, TenantDataInput, type(None))


@workflow.defn(name="auth_test_call")
class CallAuthWorkflow:
    """Calls one auth activity with the starter's identity; reports its result or error."""

    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        steps = Steps(ProgressLog())
        ref = ActivityRef(input.activity, TaskQueue.AUTH, Payload, dict[str, Any])
        try:
            result = await steps.call(ref, Payload.model_validate(input.payload))
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
class TenantSwitchWorkflow(ProgressWorkflow):
    """The tenant-switching saga's auth part: check access, open a session in the target
    tenant, end the old one; undone if loading the tenant's data fails."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=5)

    @workflow.run
    async def run(self, input: SwitchInput) -> SwitchResult:
        steps = Steps(self._progress)
        new_session = str(workflow.uuid4())
        try:
            await steps.step(
                "validate_credentials",
                lambda: steps.call(
                    AuthActivities.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(
                        session_id=input.session_id, tenant_id=input.tenant_id
                    ),
                ),
            )
            await steps.step(
                "check_permissions",
                lambda: steps.call(
                    AuthActivities.CHECK_PERMISSIONS,
                    CheckPermissionsInput(
                        permissions=[Permission.TENANT_READ],
                        tenant_id=input.tenant_id,
                        require=True,
                    ),
                ),
            )
            created: CreatedSession = await steps.step(
                "create_session",
                lambda: steps.call(
                    AuthActivities.CREATE_SESSION,
                    CreateSessionInput(session_id=new_session, tenant_id=input.tenant_id),
                ),
                lambda created: steps.undo(
                    AuthActivities.ROLLBACK_SESSION_CREATION,
                    SessionInput(session_id=created.session_id),
                ),
            )
            await steps.step(
                "invalidate_session",
                lambda: steps.call(
                    AuthActivities.INVALIDATE_SESSION, SessionInput(session_id=input.session_id)
                ),
                lambda _: steps.undo(
                    AuthActivities.RESTORE_PREVIOUS_SESSION,
                    SessionInput(session_id=input.session_id),
                ),
            )
            if input.fail_loading:
                await steps.step(
                    "load_tenant_data",
                    lambda: steps.call(
                        LOAD_TENANT_DATA_REF,
                        TenantDataInput(tenant_id=input.tenant_id),
                        local=True,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from None
        return SwitchResult(session_id=created.session_id, exchange_code=created.exchange_code)


WORKFLOWS: list[type] = [CallAuthWorkflow, TenantSwitchWorkflow]
ACTIVITIES = [load_tenant_data]
