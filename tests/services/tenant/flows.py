"""A stand-in for another service's workflow (user onboarding, compliance): it calls
activities by name on a task queue, as those workflows will. No pytest imports: the workflow
sandbox re-imports this module."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, JsonValue
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

CALLER_WORKFLOW = "tenant_test_activity_caller"


class ActivityCall(BaseModel):
    activity: str
    input: dict[str, JsonValue]
    task_queue: str = "tenant-task-queue"


class CallOutcome(BaseModel):
    result: JsonValue = None
    error_type: str | None = None
    message: str | None = None


class CallerInput(BaseModel):
    calls: list[ActivityCall]


@workflow.defn(name=CALLER_WORKFLOW)
class ActivityCallerWorkflow:
    @workflow.run
    async def run(self, input: CallerInput) -> list[CallOutcome]:
        outcomes: list[CallOutcome] = []
        for call in input.calls:
            try:
                result = await workflow.execute_activity(
                    call.activity,
                    call.input,
                    task_queue=call.task_queue,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError as error:
                cause = error.cause
                assert isinstance(cause, ApplicationError)
                outcomes.append(CallOutcome(error_type=cause.type, message=cause.message))
                continue
            outcomes.append(CallOutcome(result=result))
        return outcomes
