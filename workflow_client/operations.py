"""Typed operations on workflows for BFFs and the gateway: start, execute within a budget,
start many in parallel, describe, progress, result, cancel, retry and list.

Every call takes the caller's verified RequestContext. An operation belongs to the tenant that
started it; to any other tenant it does not exist (OperationNotFound, never "forbidden").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

import structlog
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import (
    TimeoutError as TemporalTimeoutError,
)
from temporalio.service import RPCError, RPCStatusCode
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind, error_kind
from contracts.names import WORKFLOW_TASK_QUEUES, QueryName, SearchAttribute
from contracts.operations import OperationStatus
from contracts.progress import EventKind, Progress, ProgressReport, ProgressRequest
from workflow_client.codec import EncryptionCodec
from workflow_client.errors import (
    InvalidOperationId,
    InvalidPageToken,
    OperationAlreadyExists,
    OperationNotFound,
    TemporalUnavailable,
    UnknownWorkflowType,
    WorkflowClientError,
    WorkflowFailed,
)
from workflow_client.models import (
    ExecuteOutcome,
    Operation,
    OperationPage,
    OperationSnapshot,
    PageTokens,
    StartOutcome,
    StartRequest,
)

log = structlog.stdlib.get_logger(__name__)
T = TypeVar("T")

TENANT_ID = SearchAttributeKey.for_keyword(SearchAttribute.TENANT_ID)
USER_ID = SearchAttributeKey.for_keyword(SearchAttribute.USER_ID)
OPERATION_TYPE = SearchAttributeKey.for_keyword(SearchAttribute.OPERATION_TYPE)
RETRY_OF_MEMO = "retry_of"

# {type}-{user}-{32 hex}: the type and user make ids readable in the Temporal UI.
_OPERATION_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}-[A-Za-z0-9_.:@]{1,128}-[0-9a-f]{32}$")
_USER_IN_ID = re.compile(r"[^A-Za-z0-9_.:@]")
# Values interpolated into visibility queries: ids only, so no quoting games are possible.
_QUERY_VALUE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5f6d2f0a-8c1e-4f43-9a57-5d1c3b2f7e10")

_STATUS = {
    WorkflowExecutionStatus.RUNNING: OperationStatus.RUNNING,
    # A describe without run id returns the newest run: continued-as-new is still running.
    WorkflowExecutionStatus.CONTINUED_AS_NEW: OperationStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: OperationStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: OperationStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: OperationStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: OperationStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: OperationStatus.TIMED_OUT,
}
_VISIBILITY_STATUS = {
    OperationStatus.RUNNING: "Running",
    OperationStatus.COMPLETED: "Completed",
    OperationStatus.FAILED: "Failed",
    OperationStatus.CANCELED: "Canceled",
    OperationStatus.TERMINATED: "Terminated",
    OperationStatus.TIMED_OUT: "TimedOut",
}
_RETRYABLE_STATUSES = frozenset(
    {
        OperationStatus.FAILED,
        OperationStatus.CANCELED,
        OperationStatus.TERMINATED,
        OperationStatus.TIMED_OUT,
    }
)


def page_token_key(client: Client) -> bytes:
    """Derived from the payload encryption key, so every gateway and BFF instance accepts the
    tokens the others issued; a client without the codec gets a per-process key."""
    codec = client.data_converter.payload_codec
    if isinstance(codec, EncryptionCodec):
        return hmac.new(codec.keyring.active_key, b"adx page tokens", hashlib.sha256).digest()
    return _PROCESS_TOKEN_KEY


_PROCESS_TOKEN_KEY = os.urandom(32)


def map_status(status: WorkflowExecutionStatus | None) -> OperationStatus:
    return _STATUS.get(status, OperationStatus.RUNNING) if status else OperationStatus.RUNNING


def operation_id_prefix(workflow_type: str, context: RequestContext) -> str:
    """``{type}-{user}-``: how the ids of the operations of this type ``context``'s user
    starts begin."""
    user = _USER_IN_ID.sub("_", context.user_id)[:128] or "anonymous"
    return f"{workflow_type}-{user}-"


def new_operation_id(workflow_type: str, context: RequestContext, request_key: str | None) -> str:
    """``{type}-{user}-{uuid}``; with a request key the uuid is derived from it, so the same
    caller submitting the same key gets the same id (and so the same operation)."""
    if request_key is None:
        suffix = uuid.uuid4().hex
    else:
        name = f"{context.tenant_id}|{context.user_id}|{workflow_type}|{request_key}"
        suffix = uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name).hex
    return operation_id_prefix(workflow_type, context) + suffix


def check_operation_id(operation_id: str) -> None:
    if not _OPERATION_ID.match(operation_id):
        raise InvalidOperationId(operation_id)


class _ClosedCache:
    """Closed operations never change: their snapshot and result are kept (LRU-bounded),
    because a query on a closed workflow replays its whole history."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, kind: str, operation_id: str) -> Any | None:
        key = (kind, operation_id)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        return None

    def put(self, kind: str, operation_id: str, value: Any) -> None:
        self._entries[(kind, operation_id)] = value
        self._entries.move_to_end((kind, operation_id))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


# Every call to Temporal but the result's long poll gets this deadline: a hung server is a
# 503 (TemporalUnavailable) in bounded time, not a request waiting as long as it hangs.
RPC_TIMEOUT = timedelta(seconds=2)


class WorkflowOperations:
    def __init__(
        self,
        client: Client,
        *,
        task_queues: Mapping[str, str] | None = None,
        closed_cache_size: int = 10_000,
        query_timeout: timedelta = timedelta(seconds=5),
        rpc_timeout: timedelta = RPC_TIMEOUT,
    ) -> None:
        self.client = client
        self._task_queues: Mapping[str, str] = task_queues or {
            str(k): str(v) for k, v in WORKFLOW_TASK_QUEUES.items()
        }
        self._closed = _ClosedCache(closed_cache_size)
        self._page_token_codec: PageTokens | None = None
        self._query_timeout = query_timeout
        self._rpc_timeout = rpc_timeout

    @property
    def _page_tokens(self) -> PageTokens:
        if self._page_token_codec is None:
            self._page_token_codec = PageTokens(page_token_key(self.client))
        return self._page_token_codec

    # Starting -----------------------------------------------------------------------

    async def start(
        self,
        context: RequestContext,
        workflow_type: str,
        input: BaseModel | None = None,
        *,
        request_key: str | None = None,
        retry_of: str | None = None,
        operation_id: str | None = None,
    ) -> Operation:
        """``operation_id``: one made beforehand (by ``new_operation_id``), for an answer that
        names the operation before it starts."""
        args = [] if input is None else [input]
        handle = await self._start(
            context, workflow_type, args, request_key, retry_of, operation_id
        )
        return await self.describe(context, handle.id)

    async def execute(
        self,
        context: RequestContext,
        workflow_type: str,
        input: BaseModel | None = None,
        *,
        budget: timedelta,
        result_type: type[T] | None = None,
        request_key: str | None = None,
    ) -> ExecuteOutcome[T]:
        """Starts the operation and waits for its result up to ``budget``; past it, hands
        back the running operation. A failure within the budget raises WorkflowFailed."""
        args = [] if input is None else [input]
        handle = await self._start(context, workflow_type, args, request_key, None)
        try:
            result = await asyncio.wait_for(
                self.result(context, handle.id, result_type=result_type),
                budget.total_seconds(),
            )
        except TimeoutError:
            return ExecuteOutcome(operation=await self.describe(context, handle.id))
        return ExecuteOutcome(operation=await self.describe(context, handle.id), result=result)

    async def start_many(
        self, context: RequestContext, requests: Sequence[StartRequest]
    ) -> list[StartOutcome]:
        """Starts every request in parallel; each succeeds or fails on its own."""

        async def one(request: StartRequest) -> StartOutcome:
            try:
                operation = await self.start(
                    context, request.workflow_type, request.input, request_key=request.request_key
                )
            except WorkflowClientError as error:
                return StartOutcome(request=request, error=error)
            return StartOutcome(request=request, operation=operation)

        return list(await asyncio.gather(*(one(request) for request in requests)))

    async def _start(
        self,
        context: RequestContext,
        workflow_type: str,
        args: Sequence[Any],
        request_key: str | None,
        retry_of: str | None,
        operation_id: str | None = None,
    ) -> WorkflowHandle[Any, Any]:
        task_queue = self._task_queues.get(workflow_type)
        if task_queue is None:
            raise UnknownWorkflowType(workflow_type)
        operation_id = operation_id or new_operation_id(workflow_type, context, request_key)
        search_attributes = TypedSearchAttributes(
            [
                SearchAttributePair(TENANT_ID, context.tenant_id),
                SearchAttributePair(USER_ID, context.user_id),
                SearchAttributePair(OPERATION_TYPE, workflow_type),
            ]
        )
        try:
            with use_context(context):
                handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
                    workflow_type,
                    args=args,
                    id=operation_id,
                    task_queue=task_queue,
                    search_attributes=search_attributes,
                    memo={RETRY_OF_MEMO: retry_of} if retry_of else None,
                    # Same key while running -> the running operation; once closed, the id is
                    # never reused, so a repeated key still finds the original operation.
                    id_conflict_policy=(
                        WorkflowIDConflictPolicy.USE_EXISTING
                        if request_key
                        else WorkflowIDConflictPolicy.FAIL
                    ),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    rpc_timeout=self._rpc_timeout,
                )
        except WorkflowAlreadyStartedError as error:
            if request_key is None:
                raise OperationAlreadyExists(operation_id) from error
            return self.client.get_workflow_handle(operation_id)
        except RPCError as error:
            raise _unavailable(self.client, error) from error
        log.info(
            "operation.started",
            operation_id=operation_id,
            workflow_type=workflow_type,
            tenant_id=context.tenant_id,
            user_id=context.user_id,
            retry_of=retry_of,
        )
        return handle

    # Reading ------------------------------------------------------------------------

    async def describe(self, context: RequestContext, operation_id: str) -> Operation:
        cached: Operation | None = self._closed.get("operation", operation_id)
        if cached is not None:
            _check_tenant(context, cached)
            return cached
        description = await self._describe_raw(operation_id)
        operation = await _operation_from(description)
        _check_tenant(context, operation)
        if operation.status.is_terminal:
            self._closed.put("operation", operation_id, operation)
        return operation

    async def keyed(
        self, context: RequestContext, workflow_type: str, request_key: str | None
    ) -> Operation | None:
        """The operation an earlier request with this Idempotency-Key started, if any."""
        if request_key is None:
            return None
        try:
            return await self.describe(
                context, new_operation_id(workflow_type, context, request_key)
            )
        except OperationNotFound:
            return None

    async def progress(
        self, context: RequestContext, operation_id: str, *, after_offset: int = 0
    ) -> OperationSnapshot:
        """Status plus the progress events after ``after_offset`` (the workflow's own log)."""
        operation = await self.describe(context, operation_id)
        if operation.status is OperationStatus.RUNNING and not operation.has_run:
            # Just started: nothing recorded yet, and a query would wait for the first task
            # (what a start answers must not).
            nothing_yet = ProgressReport(progress=Progress())
            return OperationSnapshot(operation=operation, report=nothing_yet)
        full: OperationSnapshot | None = self._closed.get("snapshot", operation_id)
        if full is None:
            report = await self.query_progress(
                operation, after_offset=0 if operation.status.is_terminal else after_offset
            )
            snapshot = OperationSnapshot(operation=operation, report=report)
            if not operation.status.is_terminal:
                return snapshot
            full = snapshot
            self._closed.put("snapshot", operation_id, full)
        events = [e for e in full.report.events if e.offset > after_offset]
        return OperationSnapshot(
            operation=full.operation,
            report=ProgressReport(progress=full.report.progress, events=events),
        )

    async def query_progress(self, operation: Operation, *, after_offset: int) -> ProgressReport:
        """The workflow's progress events after ``after_offset``, for a caller that already
        holds the Operation (from ``describe``, so its tenant was checked)."""
        handle = self.client.get_workflow_handle(operation.id)
        try:
            # A query of a running workflow can miss its worker for a moment (a task in
            # flight, a sticky queue being abandoned): asked again before giving up.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(QUERY_ATTEMPTS),
                wait=wait_exponential(multiplier=0.2, max=1.0),
                reraise=True,
            ):
                with attempt:
                    report: ProgressReport = await handle.query(
                        QueryName.PROGRESS,
                        ProgressRequest(after_offset=after_offset, limit=5000),
                        result_type=ProgressReport,
                        rpc_timeout=self._query_timeout,
                    )
        except (RPCError, WorkflowQueryFailedError) as error:
            if not operation.status.is_terminal:
                log.warning(
                    "operation.progress_query_failed",
                    operation_id=operation.id,
                    status=error.status.name if isinstance(error, RPCError) else "QUERY_FAILED",
                    reason=error.message,
                )
                raise _unavailable(self.client, error) from error
            # A closed workflow whose worker is gone cannot answer: its status still can.
            log.warning("operation.progress_unavailable", operation_id=operation.id)
            return ProgressReport(progress=Progress())
        return report

    async def result(
        self, context: RequestContext, operation_id: str, *, result_type: type[T] | None = None
    ) -> T:
        """Waits for the operation to finish; raises WorkflowFailed if it did not complete."""
        await self.describe(context, operation_id)
        cached = self._closed.get("result", operation_id)
        if cached is not None:
            return cast(T, _reraise_or_return(cached))
        handle = self.client.get_workflow_handle(operation_id, result_type=result_type)
        try:
            value: T = await handle.result()
            outcome: tuple[str, Any] = ("ok", value)
        except WorkflowFailureError as error:
            failed = _workflow_failed(operation_id, error)
            if _cancelled(error):
                # A cancelled workflow can carry no details: its progress log names the
                # compensations that ran.
                failed.compensations = await self._compensations_run(context, operation_id)
            outcome = ("error", failed)
        except RPCError as error:
            raise _unavailable(self.client, error) from error
        self._closed.put("result", operation_id, outcome)
        return cast(T, _reraise_or_return(outcome))

    async def _compensations_run(self, context: RequestContext, operation_id: str) -> list[str]:
        closed = await self.describe(context, operation_id)
        report = await self.query_progress(closed, after_offset=0)
        return [
            event.step
            for event in report.events
            if event.kind is EventKind.COMPENSATION_COMPLETED and event.step is not None
        ]

    async def list_operations(
        self,
        context: RequestContext,
        *,
        workflow_type: str | None = None,
        status: OperationStatus | None = None,
        user_id: str | None = None,
        page_size: int = 20,
        page_token: str | None = None,
    ) -> OperationPage:
        """The caller's tenant's operations, newest first (visibility is eventually
        consistent: a just-started operation may take a moment to appear)."""
        clauses = [f"{SearchAttribute.TENANT_ID} = '{_query_value(context.tenant_id)}'"]
        if user_id is not None:
            clauses.append(f"{SearchAttribute.USER_ID} = '{_query_value(user_id)}'")
        if workflow_type is not None:
            clauses.append(f"{SearchAttribute.OPERATION_TYPE} = '{_query_value(workflow_type)}'")
        if status is not None:
            clauses.append(f"ExecutionStatus = '{_VISIBILITY_STATUS[status]}'")
        try:
            token = self._page_tokens.decode(page_token)
        except ValueError as error:
            raise InvalidPageToken() from error
        iterator = self.client.list_workflows(
            " AND ".join(clauses),
            page_size=max(1, min(page_size, 100)),
            next_page_token=token,
            rpc_timeout=self._rpc_timeout,
        )
        try:
            await iterator.fetch_next_page()
        except RPCError as error:
            raise _unavailable(self.client, error) from error
        executions: Sequence[WorkflowExecution] = iterator.current_page or []
        operations = [await _operation_from(execution) for execution in executions]
        return OperationPage(
            operations=operations,
            next_page_token=self._page_tokens.encode(iterator.next_page_token),
        )

    # Changing -----------------------------------------------------------------------

    async def cancel(self, context: RequestContext, operation_id: str, reason: str) -> Operation:
        operation = await self.describe(context, operation_id)
        _check_may_change(context, operation)
        if operation.status.is_terminal:
            return operation
        try:
            with use_context(context):
                await self.client.get_workflow_handle(operation_id).cancel(
                    rpc_timeout=self._rpc_timeout
                )
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise _unavailable(self.client, error) from error
        log.info("operation.cancel_requested", operation_id=operation_id, reason=reason)
        return await self.describe(context, operation_id)

    async def retry(self, context: RequestContext, operation_id: str) -> Operation:
        """Starts a failed, cancelled, terminated or timed-out operation again with its
        original input under a new id; the new operation names the old one (``retry_of``)."""
        operation = await self.describe(context, operation_id)
        _check_may_change(context, operation)
        if operation.status not in _RETRYABLE_STATUSES:
            raise OperationAlreadyExists(operation_id)
        args = await self._original_input(operation_id)
        handle = await self._start(context, operation.workflow_type, args, None, operation_id)
        return await self.describe(context, handle.id)

    async def _original_input(self, operation_id: str) -> list[Any]:
        try:
            history = await self.client.get_workflow_handle(operation_id).fetch_history(
                rpc_timeout=self._rpc_timeout
            )
        except RPCError as error:
            raise _unavailable(self.client, error) from error
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                return await self.client.data_converter.decode(payloads)
        raise OperationNotFound(operation_id)

    async def _describe_raw(self, operation_id: str) -> WorkflowExecutionDescription:
        check_operation_id(operation_id)
        try:
            return await self.client.get_workflow_handle(operation_id).describe(
                rpc_timeout=self._rpc_timeout
            )
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise OperationNotFound(operation_id) from error
            raise _unavailable(self.client, error) from error


# A history this short (started, first task scheduled, first task started) has no completed
# workflow task yet.
_BEFORE_FIRST_TASK_EVENTS = 3


async def _operation_from(execution: WorkflowExecution) -> Operation:
    attributes = execution.typed_search_attributes
    memo = await execution.memo()
    operation = Operation(
        id=execution.id,
        workflow_type=execution.workflow_type,
        status=map_status(execution.status),
        tenant_id=attributes.get(TENANT_ID) or "",
        user_id=attributes.get(USER_ID),
        started_at=execution.start_time,
        closed_at=execution.close_time,
        retry_of=memo.get(RETRY_OF_MEMO),
    )
    operation._has_run = execution.history_length > _BEFORE_FIRST_TASK_EVENTS
    return operation


def _check_tenant(context: RequestContext, operation: Operation) -> None:
    if operation.tenant_id != context.tenant_id:
        raise OperationNotFound(operation.id)


def _check_may_change(context: RequestContext, operation: Operation) -> None:
    """Cancel and retry: the operation's own user, or an owner or admin of its tenant. To
    anyone else the operation does not exist (another member's cancel would undo their work,
    a retry would run it again with their input)."""
    if operation.user_id != context.user_id and not context.is_tenant_admin():
        raise OperationNotFound(operation.id)


def _query_value(value: str) -> str:
    if not _QUERY_VALUE.match(value):
        raise InvalidOperationId(value)
    return value


def _reraise_or_return(outcome: tuple[str, Any]) -> Any:
    kind, value = outcome
    if kind == "error":
        raise value
    return value


def _unavailable(client: Client, error: RPCError | WorkflowQueryFailedError) -> TemporalUnavailable:
    return TemporalUnavailable(
        client.service_client.config.target_host, client.namespace, error.message
    )


def _workflow_failed(operation_id: str, error: WorkflowFailureError) -> WorkflowFailed:
    """The safe, typed description of why an operation did not complete."""
    cause: BaseException | None = error.cause
    # Look through activity/child wrappers to the error that says what went wrong.
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, CancelledError):
        return WorkflowFailed(
            operation_id, ErrorKind.CONFLICT, "the operation was cancelled", _compensations(cause)
        )
    if isinstance(cause, TerminatedError):
        return WorkflowFailed(operation_id, ErrorKind.CONFLICT, "the operation was terminated")
    if isinstance(cause, TemporalTimeoutError):
        return WorkflowFailed(operation_id, ErrorKind.INTERNAL, "the operation timed out")
    if isinstance(cause, ApplicationError):
        kind = error_kind(cause.type)
        message = cause.message if kind is not ErrorKind.INTERNAL else "internal error"
        return WorkflowFailed(operation_id, kind, message, _compensations(cause))
    return WorkflowFailed(operation_id, ErrorKind.INTERNAL, "internal error")


QUERY_ATTEMPTS = 3


def _transient(error: BaseException) -> bool:
    # The progress handler only reads the workflow's log: when it fails, the worker was
    # between states (a workflow task failing or being retried), which passes.
    return isinstance(error, WorkflowQueryFailedError) or (
        isinstance(error, RPCError)
        and error.status
        in (
            # CANCELLED: the call's own rpc_timeout expired ("Timeout expired").
            RPCStatusCode.CANCELLED,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.RESOURCE_EXHAUSTED,
        )
    )


def _cancelled(error: WorkflowFailureError) -> bool:
    cause: BaseException | None = error.cause
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    return isinstance(cause, CancelledError)


def _compensations(error: ApplicationError | CancelledError) -> list[str]:
    """Workflows list the compensations they ran in their failure details."""
    for detail in error.details:
        if isinstance(detail, dict) and isinstance(detail.get("compensations"), list):
            return [str(name) for name in detail["compensations"]]
    return []
