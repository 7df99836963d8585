"""ProgressHub against real workflows on the real dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.operations import OperationStatus
from subscriptions.events import HubEvent
from subscriptions.hub import ProgressHub
from tests.workflow_client import flows
from tests.workflow_client.flows import StepsInput
from workflow_client.errors import OperationNotFound
from workflow_client.operations import WorkflowOperations


def steps(n: int, delay_ms: int = 150) -> StepsInput:
    return StepsInput(label=uuid.uuid4().hex[:8], steps=n, step_delay_ms=delay_ms)


async def collect(stream: AsyncIterator[HubEvent], limit: int | None = None) -> list[HubEvent]:
    events = []
    async for event in stream:
        events.append(event)
        if limit is not None and len(events) >= limit:
            break
    return events


def assert_contiguous(events: list[HubEvent], start: int = 1) -> None:
    assert [e.offset for e in events] == list(range(start, start + len(events)))


async def test_two_subscribers_share_one_watcher_and_see_the_same_events(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(3))
    first, second = await asyncio.gather(
        collect(await hub.subscribe(alice, op.id)), collect(await hub.subscribe(alice, op.id))
    )
    assert hub.watchers_started == 1
    assert [e.model_dump() for e in first] == [e.model_dump() for e in second]
    assert_contiguous(first)
    terminal = first[-1]
    assert terminal.terminal
    assert terminal.status is OperationStatus.COMPLETED
    assert isinstance(terminal.result, dict)
    assert terminal.result["done"] == ["s0", "s1", "s2"]
    assert [e.event.kind for e in first[:-1] if e.event][-1] == "step_completed"
    assert hub.watching == []


async def test_resume_from_an_offset_misses_nothing_and_repeats_nothing(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(4))
    head = await collect(await hub.subscribe(alice, op.id), limit=3)
    # The client disconnected (the stream was closed); it resumes from what it saw last.
    tail = await collect(await hub.subscribe(alice, op.id, from_offset=head[-1].offset))
    assert_contiguous(head + tail)
    assert tail[-1].terminal


async def test_last_subscriber_leaving_stops_the_watcher(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(5, delay_ms=400))
    stream = await hub.subscribe(alice, op.id)
    await anext(stream)
    assert hub.watching == [op.id]
    reads_before = hub.reads(op.id)
    await stream.aclose()  # type: ignore[attr-defined]
    assert hub.watching == []
    await asyncio.sleep(0.3)
    assert hub.reads(op.id) == 0  # no watcher is reading any more
    assert reads_before >= 1
    await ops.cancel(alice, op.id, "cleanup")


async def test_terminal_event_for_a_failure_carries_the_safe_error(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    request = steps(3, delay_ms=50)
    flows.FAILING_STEPS.add(f"{request.label}:s1")
    op = await ops.start(alice, "demo_steps", request)
    events = await collect(await hub.subscribe(alice, op.id))
    terminal = events[-1]
    assert terminal.status is OperationStatus.FAILED
    assert terminal.error is not None
    assert terminal.error.kind is ErrorKind.EXTERNAL_SERVICE
    assert terminal.error.compensations == ["undo_s0"]
    assert terminal.result is None
    assert_contiguous(events)


async def test_terminal_event_for_a_cancellation(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(6, delay_ms=300))
    stream = await hub.subscribe(alice, op.id)
    first = await anext(stream)
    await ops.cancel(alice, op.id, "changed my mind")
    rest = await collect(stream)
    assert rest[-1].terminal
    assert rest[-1].status is OperationStatus.CANCELED
    assert_contiguous([first, *rest])


async def test_finished_operation_replays_what_is_asked_and_ends(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    op = await ops.start(alice, "demo_steps", steps(2, delay_ms=0))
    await ops.result(alice, op.id)
    everything = await collect(await ProgressHub(ops).subscribe(alice, op.id))
    assert everything[-1].terminal
    assert_contiguous(everything)
    later = await collect(await ProgressHub(ops).subscribe(alice, op.id, from_offset=3))
    assert [e.offset for e in later] == [e.offset for e in everything if e.offset > 3]
    past_the_end = await collect(
        await ProgressHub(ops).subscribe(alice, op.id, from_offset=everything[-1].offset)
    )
    assert past_the_end == []


async def test_a_new_process_resumes_from_the_workflow_log(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    op = await ops.start(alice, "demo_steps", steps(4, delay_ms=250))
    before = await collect(await ProgressHub(ops).subscribe(alice, op.id), limit=2)
    # A fresh hub has no memory of the operation: everything comes from the workflow.
    after = await collect(await ProgressHub(ops).subscribe(alice, op.id, from_offset=2))
    assert_contiguous(before + after)
    assert after[-1].status is OperationStatus.COMPLETED


async def test_only_the_owner_or_a_tenant_admin_may_subscribe(
    ops: WorkflowOperations, alice: RequestContext, mallory: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(1, delay_ms=0))
    with pytest.raises(OperationNotFound):
        await hub.subscribe(mallory, op.id)
    colleague = RequestContext(
        user_id="carol@acme.test", tenant_id=alice.tenant_id, roles=("member",)
    )
    with pytest.raises(OperationNotFound):
        await hub.subscribe(colleague, op.id)
    admin = RequestContext(user_id="dave@acme.test", tenant_id=alice.tenant_id, roles=("admin",))
    events = await collect(await hub.subscribe(admin, op.id))
    assert events[-1].terminal


async def test_a_slow_subscriber_delays_no_one_and_misses_nothing(
    ops: WorkflowOperations, alice: RequestContext
) -> None:
    hub = ProgressHub(ops)
    op = await ops.start(alice, "demo_steps", steps(6, delay_ms=50))
    slow = await hub.subscribe(alice, op.id)
    first = await anext(slow)  # joins, then stops reading while the operation runs on
    fast_events = await collect(await hub.subscribe(alice, op.id))
    assert fast_events[-1].terminal
    assert_contiguous(fast_events)
    # The slow one is only behind: it reads everything, in order, when it gets to it.
    rest = await collect(slow)
    assert [e.model_dump() for e in [first, *rest]] == [e.model_dump() for e in fast_events]
