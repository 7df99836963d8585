"""workflow_client operations against the real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import temporalio.client
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from adx.settings import Settings
from contracts.context import HEADER_KEY, RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.operations import OperationStatus
from contracts.progress import EventKind
from tests.workflow_client import flows
from tests.workflow_client.flows import StepsInput, StepsResult, WaitInput, WhoAmI
from workflow_client.connect import connect
from workflow_client.errors import (
    InvalidOperationId,
    InvalidPageToken,
    OperationNotFound,
    TemporalUnavailable,
    UnknownWorkflowType,
    WorkflowFailed,
)
from workflow_client.models import StartRequest
from workflow_client.operations import (
    OPERATION_TYPE,
    TENANT_ID,
    USER_ID,
    WorkflowOperations,
    map_status,
    new_operation_id,
)


def label() -> str:
    return uuid.uuid4().hex[:10]


async def test_start_and_result_with_progress(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    op = await ops.start(alice, "demo_steps", StepsInput(label=label(), steps=3))
    assert op.id.startswith("demo_steps-alice@acme.test-")
    assert op.tenant_id == alice.tenant_id
    assert op.user_id == alice.user_id
    result = await ops.result(alice, op.id, result_type=StepsResult)
    assert result.done == ["s0", "s1", "s2"]
    snapshot = await ops.progress(alice, op.id)
    assert snapshot.operation.status is OperationStatus.COMPLETED
    assert snapshot.report.progress.completed == 3
    offsets = [e.offset for e in snapshot.report.events]
    assert offsets == list(range(1, len(offsets) + 1))
    later = await ops.progress(alice, op.id, after_offset=4)
    assert [e.offset for e in later.report.events] == offsets[4:]


async def test_execute_within_budget_returns_the_result(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    outcome = await ops.execute(
        alice,
        "demo_steps",
        StepsInput(label=label(), steps=1),
        budget=timedelta(seconds=10),
        result_type=StepsResult,
    )
    assert outcome.completed
    assert outcome.result is not None
    assert outcome.result.done == ["s0"]


async def test_execute_past_budget_hands_back_the_running_operation(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    outcome = await ops.execute(
        alice,
        "demo_steps",
        StepsInput(label=label(), steps=2, step_delay_ms=1500),
        budget=timedelta(milliseconds=300),
        result_type=StepsResult,
    )
    assert not outcome.completed
    assert outcome.result is None
    assert outcome.operation.status is OperationStatus.RUNNING
    final = await ops.result(alice, outcome.operation.id, result_type=StepsResult)
    assert final.done == ["s0", "s1"]


async def test_context_reaches_workflow_activity_child_and_signal(
    ops: WorkflowOperations, client: Client, alice: RequestContext
) -> None:
    op = await ops.start(alice, "demo_context")
    handle = client.get_workflow_handle(op.id)
    with use_context(alice):
        await handle.signal("poke")
    seen = await ops.result(alice, op.id, result_type=list[WhoAmI])
    assert [s.where for s in seen] == [
        "workflow",
        "activity",
        "child_workflow",
        "child_activity",
        "signal",
    ]
    for who in seen:
        assert who.user_id == alice.user_id, who.where
        assert who.tenant_id == alice.tenant_id, who.where
        assert who.roles == list(alice.roles), who.where
        assert who.correlation_id == alice.correlation_id, who.where


async def test_context_header_carries_only_identity_claims(
    ops: WorkflowOperations, client: Client, alice: RequestContext
) -> None:
    op = await ops.start(alice, "demo_steps", StepsInput(label=label(), steps=1))
    await ops.result(alice, op.id, result_type=StepsResult)
    history = await client.get_workflow_handle(op.id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    header = started.header.fields[HEADER_KEY]
    claims = json.loads(header.data)
    # Headers are stored unencrypted: ids and roles only, never a token.
    assert set(claims) == {"user_id", "tenant_id", "roles", "correlation_id"}
    assert claims["tenant_id"] == alice.tenant_id


async def test_request_key_makes_a_repeated_submit_the_same_operation(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    key = uuid.uuid4().hex
    first = await ops.start(alice, "demo_steps", StepsInput(label=label()), request_key=key)
    again = await ops.start(alice, "demo_steps", StepsInput(label=label()), request_key=key)
    assert again.id == first.id
    await ops.result(alice, first.id, result_type=StepsResult)
    after_close = await ops.start(alice, "demo_steps", StepsInput(label=label()), request_key=key)
    assert after_close.id == first.id
    assert after_close.status is OperationStatus.COMPLETED
    other_key = await ops.start(
        alice, "demo_steps", StepsInput(label=label()), request_key=uuid.uuid4().hex
    )
    assert other_key.id != first.id


async def test_start_many_keeps_each_result_when_one_fails(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    requests = [
        StartRequest("demo_steps", StepsInput(label=label(), steps=1)),
        StartRequest("no_such_workflow", None),
        StartRequest("demo_steps", StepsInput(label=label(), steps=2)),
    ]
    outcomes = await ops.start_many(alice, requests)
    assert [o.request for o in outcomes] == requests
    assert outcomes[0].operation is not None
    assert outcomes[2].operation is not None
    assert isinstance(outcomes[1].error, UnknownWorkflowType)
    assert outcomes[1].operation is None
    results = await asyncio.gather(
        ops.result(alice, outcomes[0].operation.id, result_type=StepsResult),
        ops.result(alice, outcomes[2].operation.id, result_type=StepsResult),
    )
    assert [r.done for r in results] == [["s0"], ["s0", "s1"]]


async def test_failure_is_typed_and_names_compensations(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    name = label()
    flows.FAILING_STEPS.add(f"{name}:s2")
    op = await ops.start(alice, "demo_steps", StepsInput(label=name, steps=3))
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(alice, op.id, result_type=StepsResult)
    assert caught.value.kind is ErrorKind.EXTERNAL_SERVICE
    assert caught.value.compensations == ["undo_s1", "undo_s0"]
    assert flows.SIDE_EFFECTS[-2:] == [f"undo:{name}:s1", f"undo:{name}:s0"]
    assert (await ops.describe(alice, op.id)).status is OperationStatus.FAILED


async def test_cancel_runs_compensations_and_shows_canceled(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    name = label()
    op = await ops.start(alice, "demo_steps", StepsInput(label=name, steps=5, step_delay_ms=400))
    await _wait_for_event(ops, alice, op.id, EventKind.STEP_COMPLETED)
    await ops.cancel(alice, op.id, reason="user asked")
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(alice, op.id, result_type=StepsResult)
    assert "cancelled" in caught.value.message
    assert (await ops.describe(alice, op.id)).status is OperationStatus.CANCELED
    snapshot = await ops.progress(alice, op.id)
    kinds = [e.kind for e in snapshot.report.events]
    assert EventKind.COMPENSATION_COMPLETED in kinds
    assert f"undo:{name}:s0" in flows.SIDE_EFFECTS


async def test_retry_starts_again_with_the_original_input(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    name = label()
    flows.FAILING_STEPS.add(f"{name}:s1")
    failed = await ops.start(
        alice, "demo_steps", StepsInput(label=name, steps=2, secret_note="keep me")
    )
    with pytest.raises(WorkflowFailed):
        await ops.result(alice, failed.id, result_type=StepsResult)
    flows.FAILING_STEPS.clear()
    retried = await ops.retry(alice, failed.id)
    assert retried.id != failed.id
    assert retried.retry_of == failed.id
    assert retried.workflow_type == "demo_steps"
    result = await ops.result(alice, retried.id, result_type=StepsResult)
    assert result.label == name
    assert result.done == ["s0", "s1"]


async def test_status_mapping_for_every_terminal_state(
    ops: WorkflowOperations, client: Client, alice: RequestContext
) -> None:
    terminated = await ops.start(alice, "demo_wait", WaitInput(seconds=60))
    await client.get_workflow_handle(terminated.id).terminate("test")
    assert (await ops.describe(alice, terminated.id)).status is OperationStatus.TERMINATED

    canceled = await ops.start(alice, "demo_wait", WaitInput(seconds=60))
    await ops.cancel(alice, canceled.id, "test")
    await _wait_status(ops, alice, canceled.id, OperationStatus.CANCELED)

    continued = await ops.start(alice, "demo_continue", WaitInput(seconds=2))
    await asyncio.sleep(0.5)
    assert (await ops.describe(alice, continued.id)).status is OperationStatus.RUNNING

    assert map_status(WorkflowExecutionStatus.TIMED_OUT) is OperationStatus.TIMED_OUT
    assert map_status(WorkflowExecutionStatus.CONTINUED_AS_NEW) is OperationStatus.RUNNING
    assert map_status(WorkflowExecutionStatus.FAILED) is OperationStatus.FAILED
    assert map_status(WorkflowExecutionStatus.COMPLETED) is OperationStatus.COMPLETED


async def test_timed_out_operation_maps_to_timed_out(
    ops: WorkflowOperations, client: Client, alice: RequestContext, demo_queue: str
) -> None:
    # A run timeout is a start option the facade does not expose: start through the same
    # client with the facade's id format and search attributes, then read it back.
    operation_id = new_operation_id("demo_wait", alice, None)
    handle = await client.start_workflow(
        "demo_wait",
        WaitInput(seconds=60),
        id=operation_id,
        task_queue=demo_queue,
        execution_timeout=timedelta(seconds=1),
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(TENANT_ID, alice.tenant_id),
                SearchAttributePair(USER_ID, alice.user_id),
                SearchAttributePair(OPERATION_TYPE, "demo_wait"),
            ]
        ),
    )
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(alice, handle.id)
    assert "timed out" in caught.value.message
    assert (await ops.describe(alice, handle.id)).status is OperationStatus.TIMED_OUT


async def test_another_tenant_sees_nothing(
    ops: WorkflowOperations, alice: RequestContext, mallory: RequestContext
) -> None:
    op = await ops.start(alice, "demo_wait", WaitInput(seconds=30))
    for call in (
        ops.describe(mallory, op.id),
        ops.progress(mallory, op.id),
        ops.result(mallory, op.id),
        ops.cancel(mallory, op.id, "not yours"),
        ops.retry(mallory, op.id),
    ):
        with pytest.raises(OperationNotFound):
            await call
    assert (await ops.describe(alice, op.id)).status is OperationStatus.RUNNING
    await ops.cancel(alice, op.id, "cleanup")


async def test_only_its_own_user_or_an_admin_cancels_or_retries_an_operation(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    """A plain member sees the tenant's operations but cannot stop or repeat another's: to
    them, for that, it does not exist. The operation's user and the tenant's admins can."""
    starter = RequestContext(
        user_id="carol@acme.test", tenant_id=alice.tenant_id, roles=("member",)
    )
    member = RequestContext(user_id="dave@acme.test", tenant_id=alice.tenant_id, roles=("member",))
    admin = RequestContext(user_id="erin@acme.test", tenant_id=alice.tenant_id, roles=("admin",))
    running = await ops.start(starter, "demo_wait", WaitInput(seconds=30))
    assert (await ops.describe(member, running.id)).status is OperationStatus.RUNNING
    with pytest.raises(OperationNotFound):
        await ops.cancel(member, running.id, "not mine")
    assert (await ops.describe(starter, running.id)).status is OperationStatus.RUNNING
    assert (await ops.cancel(admin, running.id, "as admin")).id == running.id
    with pytest.raises(WorkflowFailed):
        await ops.result(starter, running.id)
    with pytest.raises(OperationNotFound):
        await ops.retry(member, running.id)
    again = await ops.retry(starter, running.id)
    assert again.retry_of == running.id
    await ops.cancel(starter, again.id, "cleanup")


async def test_invalid_and_unknown_ids(ops: WorkflowOperations, alice: RequestContext) -> None:
    with pytest.raises(InvalidOperationId):
        await ops.describe(alice, "'; DROP TABLE--")
    with pytest.raises(OperationNotFound):
        await ops.describe(alice, f"demo_steps-alice-{uuid.uuid4().hex}")


class _CallCounter(temporalio.client.Interceptor):
    """Counts the reads a client sends to the server."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        counter = self

        class Outbound(temporalio.client.OutboundInterceptor):
            async def describe_workflow(
                self, input: temporalio.client.DescribeWorkflowInput
            ) -> temporalio.client.WorkflowExecutionDescription:
                counter.calls["describe"] += 1
                return await super().describe_workflow(input)

            async def query_workflow(self, input: temporalio.client.QueryWorkflowInput) -> Any:
                counter.calls["query"] += 1
                return await super().query_workflow(input)

        return Outbound(next)


async def test_closed_operation_is_served_from_cache(
    settings: Settings, demo_queue: str, demo_worker: None, alice: RequestContext
) -> None:
    counter = _CallCounter()
    counted = WorkflowOperations(
        await connect(settings, extra_interceptors=[counter]),
        task_queues={"demo_steps": demo_queue},
    )
    op = await counted.start(alice, "demo_steps", StepsInput(label=label(), steps=1))
    await counted.result(alice, op.id, result_type=StepsResult)
    first = await counted.progress(alice, op.id)
    reads_after_close = counter.calls.copy()
    assert reads_after_close["query"] == 1

    for _ in range(3):
        again = await counted.progress(alice, op.id)
        assert again == first
        assert (await counted.result(alice, op.id, result_type=StepsResult)).done == ["s0"]
        assert (await counted.describe(alice, op.id)).status is OperationStatus.COMPLETED
    assert counter.calls == reads_after_close  # nothing more reached the server


async def test_list_operations_of_the_tenant(
    ops: WorkflowOperations, alice: RequestContext, mallory: RequestContext
) -> None:
    mine = [
        await ops.start(alice, "demo_steps", StepsInput(label=label(), steps=1)) for _ in range(3)
    ]
    theirs = await ops.start(mallory, "demo_steps", StepsInput(label=label(), steps=1))
    for op in mine:
        await ops.result(alice, op.id, result_type=StepsResult)
    await ops.result(mallory, theirs.id, result_type=StepsResult)

    async def listed() -> set[str]:
        page = await ops.list_operations(
            alice, workflow_type="demo_steps", status=OperationStatus.COMPLETED, page_size=2
        )
        ids = {o.id for o in page.operations}
        assert len(page.operations) <= 2
        token = page.next_page_token
        while token:
            page = await ops.list_operations(
                alice,
                workflow_type="demo_steps",
                status=OperationStatus.COMPLETED,
                page_size=2,
                page_token=token,
            )
            ids |= {o.id for o in page.operations}
            token = page.next_page_token
        return ids

    ids: set[str] = set()
    for _ in range(50):  # visibility is eventually consistent
        ids = await listed()
        if len(ids) >= 3:
            break
        await asyncio.sleep(0.1)
    assert ids == {op.id for op in mine}
    assert theirs.id not in ids


async def test_unreachable_temporal_is_a_clear_error(base_settings: Settings) -> None:
    closed = base_settings.model_copy(
        update={
            "temporal_address": "127.0.0.1:1",
            "temporal_connect_attempts": 2,
            "temporal_connect_backoff_seconds": 0.01,
        }
    )
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(closed)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert closed.temporal_namespace in message
    assert "connection refused" in message
    assert "tonic" not in message


async def test_missing_namespace_is_a_clear_error(settings: Settings) -> None:
    wrong = settings.model_copy(
        update={"temporal_namespace": "no-such-namespace", "temporal_connect_attempts": 1}
    )
    with pytest.raises(TemporalUnavailable, match="namespace does not exist"):
        await connect(wrong)


async def _wait_for_event(
    ops: WorkflowOperations, context: RequestContext, operation_id: str, kind: EventKind
) -> None:
    for _ in range(200):
        snapshot = await ops.progress(context, operation_id)
        if any(e.kind is kind for e in snapshot.report.events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} event")


async def _wait_status(
    ops: WorkflowOperations, context: RequestContext, operation_id: str, status: OperationStatus
) -> None:
    for _ in range(200):
        if (await ops.describe(context, operation_id)).status is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {status}")


async def test_a_page_token_not_issued_here_is_refused_at_once(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    for forged in ("AAAA", "0w==", "not base64!"):
        with pytest.raises(InvalidPageToken):
            await ops.list_operations(alice, page_token=forged)


async def test_a_just_started_operations_progress_is_answered_without_its_worker(
    client: Client, alice: RequestContext
) -> None:
    """What a start answers (status and progress) never waits for the workflow's first task:
    here no worker polls its queue at all, and the answer still comes at once."""
    unpolled = WorkflowOperations(client, task_queues={"demo_steps": f"nobody-{label()}"})
    operation = await unpolled.start(alice, "demo_steps", StepsInput(label=label(), steps=2))
    try:
        async with asyncio.timeout(3):  # a query would wait for a worker (5 s, then fail)
            snapshot = await unpolled.progress(alice, operation.id)
        assert snapshot.operation.status is OperationStatus.RUNNING
        assert snapshot.report.progress.completed == 0
        assert snapshot.report.progress.last_offset == 0
        assert snapshot.report.events == []
    finally:
        await client.get_workflow_handle(operation.id).terminate()
