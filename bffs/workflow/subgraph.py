"""Workflow subgraph: ``operation``, ``operations``, ``operationHistory``, ``cancelOperation``,
``retryOperation`` and the ``operationProgress`` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from bffs.workflow.types import (
    Operation,
    OperationHistory,
    ProgressUpdate,
    UserRef,
    history_of,
    operation_loader,
)
from contracts.operations import OperationStatus
from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, from_workflow_error
from graph.permissions import IsAuthenticated
from graph.runtime import Subgraph
from graph.types import Connection, Edge, PageInfo, page_size
from subscriptions.events import StreamInterrupted
from workflow_client.errors import WorkflowClientError


@strawberry.input
class OperationFilter:
    type: str | None = None
    status: OperationStatus | None = None
    mine: bool = False


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def operation(self, info: Info[GraphContext, Any], id: strawberry.ID) -> Operation | None:
        """Null with a NOT_FOUND error for an unknown id or another tenant's (the loader
        raises the error it has for the id)."""
        return Operation.of(await operation_loader(info).load(str(id)))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def operations(
        self,
        info: Info[GraphContext, Any],
        filter: OperationFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Operation]:
        identity = await info.context.require_identity()
        wanted = filter or OperationFilter()
        try:
            page = await info.context.deps.operations.list_operations(
                identity,
                workflow_type=wanted.type,
                status=wanted.status,
                user_id=identity.user_id if wanted.mine else None,
                page_size=page_size(first),
                page_token=after,
            )
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        cursor = page.next_page_token or ""
        return Connection(
            edges=[Edge(cursor=cursor, node=Operation.of(op)) for op in page.operations],
            page_info=PageInfo(
                has_next_page=page.next_page_token is not None, end_cursor=page.next_page_token
            ),
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def operation_history(
        self, info: Info[GraphContext, Any], id: strawberry.ID
    ) -> OperationHistory:
        identity = await info.context.require_identity()
        try:
            snapshot = await info.context.deps.operations.progress(identity, str(id))
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        return history_of(Operation.of(snapshot.operation), snapshot.report.events)


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def cancel_operation(
        self, info: Info[GraphContext, Any], id: strawberry.ID, reason: str | None = None
    ) -> Operation:
        identity = await info.context.require_identity()
        try:
            operation = await info.context.deps.operations.cancel(
                identity, str(id), reason or "cancelled by the user"
            )
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        return Operation.of(operation)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def retry_operation(self, info: Info[GraphContext, Any], id: strawberry.ID) -> Operation:
        identity = await info.context.require_identity()
        try:
            operation = await info.context.deps.operations.retry(identity, str(id))
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        info.context.deps.metrics.workflow_started(operation.workflow_type)
        return Operation.of(operation)


@strawberry.type
class Subscription:
    # The caller is checked in the stream (require_identity), not by a permission class: a
    # permission refusal is a pre-execution `error` message, which the router masks as an
    # unexpected error, while an error in the stream reaches the client with its code.
    @strawberry.subscription(
        description="The operation's progress events in order, then live ones until it ends.",
    )
    async def operation_progress(
        self,
        info: Info[GraphContext, Any],
        id: strawberry.ID,
        from_offset: Annotated[
            int | None,
            strawberry.argument(
                description="Exclusive: the last `offset` already received, so that only the "
                "events after it are sent (a resume sends none twice). Omitted or 0: every "
                "event from the first."
            ),
        ] = None,
    ) -> AsyncGenerator[ProgressUpdate, None]:
        identity = await info.context.require_identity()
        try:
            stream = await info.context.deps.hub.subscribe(identity, str(id), from_offset or 0)
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        try:
            async for event in stream:
                yield ProgressUpdate.of(event)
        except StreamInterrupted as error:
            raise ClientError(
                ErrorCode.UNAVAILABLE, str(error), resumeFromOffset=error.last_offset
            ) from error
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


SUBGRAPH = Subgraph(
    name="workflow", query=Query, mutation=Mutation, subscription=Subscription, types=(UserRef,)
)
