"""The Operation entity (owned here) and what hangs off it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from aiodataloader import DataLoader
from pydantic import BaseModel
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts.operations import OperationStatus
from contracts.progress import EventKind, ProgressEvent
from graph.context import GraphContext
from graph.errors import from_workflow_error
from graph.types import Progress
from subscriptions.events import HubEvent
from workflow_client.errors import WorkflowClientError, WorkflowFailed
from workflow_client.models import Operation as OperationModel


@strawberry.federation.type(name="User", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class UserRef:
    id: strawberry.ID


@strawberry.type
class OperationError:
    code: str
    message: str
    compensations: list[str]


@strawberry.federation.type(keys=["id"])
class Operation:
    id: strawberry.ID
    type: str
    status: OperationStatus
    started_at: datetime | None
    closed_at: datetime | None
    retry_of: strawberry.ID | None
    user_id: strawberry.Private[str | None]

    @strawberry.field
    def user(self) -> UserRef | None:
        return UserRef(id=strawberry.ID(self.user_id)) if self.user_id else None

    @strawberry.field
    async def progress(self, info: Info[GraphContext, Any]) -> Progress:
        identity = await info.context.require_identity()
        try:
            snapshot = await info.context.deps.operations.progress(identity, str(self.id))
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        return Progress.from_model(snapshot.report.progress)

    @strawberry.field
    async def result(self, info: Info[GraphContext, Any]) -> JSON | None:
        if self.status is not OperationStatus.COMPLETED:
            return None
        identity = await info.context.require_identity()
        try:
            value: object = await info.context.deps.operations.result(identity, str(self.id))
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        return to_json(value)

    @strawberry.field
    async def error(self, info: Info[GraphContext, Any]) -> OperationError | None:
        if not self.status.is_terminal or self.status is OperationStatus.COMPLETED:
            return None
        identity = await info.context.require_identity()
        try:
            await info.context.deps.operations.result(identity, str(self.id))
        except WorkflowFailed as failure:
            return OperationError(
                code=failure.kind.graphql_code,
                message=failure.message,
                compensations=failure.compensations,
            )
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        return None

    @classmethod
    def of(cls, model: OperationModel) -> Operation:
        return cls(
            id=strawberry.ID(model.id),
            type=model.workflow_type,
            status=model.status,
            started_at=model.started_at,
            closed_at=model.closed_at,
            retry_of=strawberry.ID(model.retry_of) if model.retry_of else None,
            user_id=model.user_id,
        )

    @classmethod
    async def resolve_reference(cls, info: Info[GraphContext, Any], id: strawberry.ID) -> Operation:
        # An error the loader has for the id (NOT_FOUND for another tenant's) is raised.
        return cls.of(await operation_loader(info).load(str(id)))


def to_json(value: object) -> JSON:
    """A result as plain JSON data (results are pydantic models or already plain)."""
    if isinstance(value, BaseModel):
        return cast(JSON, value.model_dump(mode="json"))
    return cast(JSON, value)


def operation_loader(info: Info[GraphContext, Any]) -> DataLoader[str, OperationModel]:
    """Operations by id, one batch per request (entity references and lists)."""
    context = info.context

    async def describe(operation_id: str) -> OperationModel:
        identity = await context.require_identity()
        try:
            return await context.deps.operations.describe(identity, operation_id)
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error

    return context.loader_of_each("operations", describe)


@strawberry.type
class OperationEvent:
    offset: int
    at: datetime
    kind: str
    step: str | None
    message: str | None
    completed: int
    total: int

    @classmethod
    def of(cls, event: ProgressEvent) -> OperationEvent:
        return cls(
            offset=event.offset,
            at=event.at,
            kind=event.kind.value,
            step=event.step,
            message=event.message,
            completed=event.completed,
            total=event.total,
        )


@strawberry.type
class ProgressUpdate:
    """One event of ``operationProgress``; resume after a disconnect with
    ``fromOffset`` = the last ``offset`` received."""

    operation_id: strawberry.ID
    offset: int
    status: OperationStatus
    progress: Progress
    event: OperationEvent | None
    terminal: bool
    result: JSON | None
    error: OperationError | None

    @classmethod
    def of(cls, event: HubEvent) -> ProgressUpdate:
        return cls(
            operation_id=strawberry.ID(event.operation_id),
            offset=event.offset,
            status=event.status,
            progress=Progress.from_model(event.progress),
            event=OperationEvent.of(event.event) if event.event else None,
            terminal=event.terminal,
            result=to_json(event.result),
            error=OperationError(
                code=event.error.kind.graphql_code,
                message=event.error.message,
                compensations=event.error.compensations,
            )
            if event.error
            else None,
        )


@strawberry.type
class StepRecord:
    name: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None

    @strawberry.field
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds() * 1000


@strawberry.type
class OperationHistory:
    operation: Operation
    steps: list[StepRecord]
    compensations: list[StepRecord]
    events: list[OperationEvent]


_STEP_END = {
    EventKind.STEP_COMPLETED: "COMPLETED",
    EventKind.STEP_FAILED: "FAILED",
    EventKind.COMPENSATION_COMPLETED: "COMPLETED",
    EventKind.COMPENSATION_FAILED: "FAILED",
}


def history_of(operation: Operation, events: list[ProgressEvent]) -> OperationHistory:
    """Steps and compensations with their timings, from the workflow's progress log."""
    steps: dict[str, StepRecord] = {}
    compensations: dict[str, StepRecord] = {}
    for event in events:
        if event.step is None:
            continue
        if event.kind in (EventKind.STEP_STARTED, EventKind.STEP_COMPLETED, EventKind.STEP_FAILED):
            table = steps
        elif event.kind in (
            EventKind.COMPENSATION_STARTED,
            EventKind.COMPENSATION_COMPLETED,
            EventKind.COMPENSATION_FAILED,
        ):
            table = compensations
        else:
            continue
        record = table.setdefault(
            event.step, StepRecord(name=event.step, state="RUNNING", started_at=None, ended_at=None)
        )
        if event.kind in (EventKind.STEP_STARTED, EventKind.COMPENSATION_STARTED):
            record.started_at = event.at
        else:
            record.state = _STEP_END[event.kind]
            record.ended_at = event.at
    return OperationHistory(
        operation=operation,
        steps=list(steps.values()),
        compensations=list(compensations.values()),
        events=[OperationEvent.of(e) for e in events],
    )
