"""The saga guarantee under faults: each saga workflow, at each of its steps, cancelled before
the step did anything, cancelled while the step is blocked before its commit, cancelled racing
the step's completion, and failed for good. After each run every store the services own is
checked: all of the operation applied (it completed), or none of it (it was cancelled or
failed: the stores hold exactly what they held before, but for the rows a spec declares as
the request's own bookkeeping); the compensations the client is told about are exactly the
ones that ran.

The stack is the history recorder's (``adx.histories.running_stack``): a dev server of its
own, the five services' real workers in this process, the fault injector (``adx.faults``) in
front of the real activities.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import inspect, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from adx.faults import Fault, Point
from adx.histories import SCENARIO_TIMEOUT, Harness
from contracts.context import RequestContext
from contracts.names import WorkflowType
from services.common.db import Database
from tests.support.tables import holds_state
from tests.support.workflow_worker import WorkflowWorker
from workflow_client.errors import WorkflowFailed
from workflow_client.operations import new_operation_id

Rows = dict[str, list[tuple[Any, ...]]]
Arm = Callable[[str], None]


@dataclass(frozen=True)
class SagaStep:
    name: str
    activity: str  # the activity the step runs (the one faulted)
    compensated: bool = True
    # Compensations registered just before the step starts (undo something it may leave).
    registers_before: tuple[str, ...] = ()
    # A read changes nothing: a cancel abandons it (its held body may run after the end).
    read: bool = False
    # Which run of ``activity`` in the workflow is this step's (it may be called earlier).
    nth: int = 1
    # One item of many: when it fails it is reported and the others go on (the spec's
    # ``reported`` checks the result).
    item: bool = False


@dataclass
class Prepared:
    """One run's caller and input, made fresh for each run (new ids, new fixtures); a
    ``start`` that makes the caller (a registration's pending user) sets ``context``."""

    context: RequestContext
    input: BaseModel | None  # None: the spec's ``start`` makes the request itself
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SagaSpec:
    workflow_type: WorkflowType
    steps: tuple[SagaStep, ...]
    prepare: Callable[[Harness], Awaitable[Prepared]]
    # Checks that every change of a completed run is there ("all of it").
    applied: Callable[[Harness, Prepared, Any], Awaitable[None]]
    # The step after which the operation completes whatever happens (an email sent);
    # ``pivot_at_start``: from the moment that step starts (what it checks already happened).
    pivot: str | None = None
    pivot_at_start: bool = False
    # (service, table): rows a run may leave whatever its outcome (the request's own record).
    bookkeeping: frozenset[tuple[str, str]] = frozenset()
    # Compensations registered when the workflow starts (for what the request made before).
    initial_compensations: tuple[str, ...] = ()
    # Starts the operation for a run, as a person would (default: WorkflowOperations.start
    # with the key); it calls ``arm`` with the operation id just before the workflow starts.
    start: Callable[[Harness, Prepared, str, Arm], Awaitable[str]] | None = None
    # What a person does meanwhile (click the emailed link, ...), run beside the operation.
    drive: Callable[[Harness, Prepared, str], Coroutine[Any, Any, None]] | None = None
    # An operation that is not undone but resumed: what a cancelled or failed run did stays
    # done (an erasure cannot be taken back; each item of a bulk change stands on its own).
    # Instead of "none of it": the run says of itself that it did not complete
    # (``unfinished``, given its operation id), and the same request made again completes
    # with all of it (``applied``; every step is idempotent, so nothing is done twice).
    resumable: bool = False
    unfinished: Callable[[Harness, Prepared, str], Awaitable[None]] | None = None
    # For a step that is an ``item``: at its "failure" point the run completes, ``reported``
    # checks its result names the item, and (as for ``resumable``) the same request made
    # again applies it.
    reported: Callable[[Harness, Prepared, Any], Awaitable[None]] | None = None

    def step_index(self, name: str) -> int:
        return [step.name for step in self.steps].index(name)

    def compensations_after(self, index: int, point: Point) -> list[str]:
        """The compensations that run, newest first, when step ``index`` meets ``point``."""
        done = list(self.initial_compensations)
        for step in self.steps[:index]:
            done += [*step.registers_before, *([step.name] if step.compensated else [])]
        step = self.steps[index]
        done += step.registers_before
        if commits(point) and step.compensated and not step.read:
            done.append(step.name)
        return list(reversed(done))


# What a point means for the outcome --------------------------------------------------------

CANCEL_POINTS = (Point.HANG, Point.HOLD_BEFORE, Point.HOLD_AFTER, Point.LOST_ANSWER)
POINTS = (Point.HANG, Point.HOLD_BEFORE, Point.HOLD_AFTER, Point.FAIL)
POINT_NAMES = {
    Point.HANG: "cancel-before",
    Point.HOLD_BEFORE: "cancel-during",
    Point.HOLD_AFTER: "cancel-racing-completion",
    Point.FAIL: "failure",
    Point.LOST_ANSWER: "cancel-after-a-retry",
}


def commits(point: Point) -> bool:
    """Whether the faulted step's real body runs (and commits) under this point."""
    return point in (Point.HOLD_BEFORE, Point.HOLD_AFTER, Point.LOST_ANSWER)


def real_runs(point: Point) -> int:
    """How often the faulted step's real body runs under this point."""
    return 2 if point is Point.LOST_ANSWER else int(commits(point))


# Stores -------------------------------------------------------------------------------------


# Columns that say when and by which operation a row was last written, not what it holds: a
# compensated change restores the values and leaves these moved on.
BOOKKEEPING_COLUMNS = frozenset(
    {"updated_at", "version", "last_operation_id", "status_operation", "plan_operation"}
)


async def table_rows(db: Database) -> Rows:
    """Every row of every table (migration bookkeeping and the record of what operations
    replaced aside), sorted, without the bookkeeping columns."""

    def tables(conn: Any) -> list[str]:
        return [name for name in inspect(conn).get_table_names() if holds_state(name)]

    result: Rows = {}
    async with db.engine.connect() as conn:
        for name in await conn.run_sync(tables):
            found = await conn.execute(text(f'SELECT * FROM "{name}"'))  # noqa: S608
            kept = [i for i, key in enumerate(found.keys()) if key not in BOOKKEEPING_COLUMNS]
            rows = [tuple(row[i] for i in kept) for row in found.all()]
            result[name] = sorted(rows, key=repr)
    return result


async def stores(h: Harness, bookkeeping: frozenset[tuple[str, str]]) -> dict[str, Rows]:
    """Every service's tables, and the file service's blobs on disk (path, size)."""
    found: dict[str, Rows] = {}
    for service, runtime in sorted(h.runtimes.items()):
        rows = await table_rows(runtime.db)
        found[service] = {
            table: values for table, values in rows.items() if (service, table) not in bookkeeping
        }
    root = h.settings.file_storage_root or h.settings.data_dir / "files"
    found["disk"] = {
        "blobs": sorted(
            (str(path.relative_to(root)), path.stat().st_size)
            for path in root.rglob("*")
            if path.is_file()
        )
    }
    return found


def differences(before: dict[str, Rows], after: dict[str, Rows]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for service in sorted(set(before) | set(after)):
        for table in sorted(set(before.get(service, {})) | set(after.get(service, {}))):
            old = set(before.get(service, {}).get(table, []))
            new = set(after.get(service, {}).get(table, []))
            if old != new:
                changed[f"{service}.{table}"] = {
                    "added": sorted(new - old, key=repr),
                    "removed": sorted(old - new, key=repr),
                }
    return changed


# The two ways a guarantee breaks ------------------------------------------------------------


class HalfDone(AssertionError):
    """An operation that did not complete left something behind."""


class Duplicated(AssertionError):
    """An operation did something twice."""


def check_nothing_left(before: dict[str, Rows], after: dict[str, Rows]) -> None:
    changed = differences(before, after)
    if changed:
        raise HalfDone(f"the stores changed: {changed}")


# The activities an undisturbed run of each workflow type schedules (one run each).
_UNDISTURBED: dict[str, list[str]] = {}


async def check_nothing_repeated(h: Harness, spec: SagaSpec, workflow_id: str) -> None:
    """The same activities as a run nobody interrupted: nothing was scheduled again."""
    name = spec.workflow_type.value
    if name not in _UNDISTURBED:
        _UNDISTURBED[name] = await run_to_completion(h, spec)
    reference = _UNDISTURBED[name]
    scheduled = sorted(await scheduled_activities(h, workflow_id))
    if scheduled != reference:
        raise Duplicated(f"{workflow_id} scheduled {scheduled}, an undisturbed run {reference}")


# Running one point --------------------------------------------------------------------------


async def start_faulted(
    h: Harness, spec: SagaSpec, prepared: Prepared, step: SagaStep, point: Point
) -> tuple[str, Fault]:
    faults: list[Fault] = []

    def arm(workflow_id: str) -> None:
        faults.append(h.faults.add(workflow_id, step.activity, point, step.nth))
        # What the fault is keyed by (a ``start`` may arm an id's prefix), cleared at the end.
        prepared.facts["_armed"] = workflow_id

    workflow_id = await start_operation(h, spec, prepared, uuid.uuid4().hex, arm)
    (fault,) = faults
    return workflow_id, fault


def clear_faults(h: Harness, prepared: Prepared, workflow_id: str) -> None:
    h.faults.clear(workflow_id)
    armed = prepared.facts.get("_armed")
    if armed is not None and armed != workflow_id:
        h.faults.clear(armed)


async def start_operation(
    h: Harness, spec: SagaSpec, prepared: Prepared, key: str, arm: Arm = lambda _: None
) -> str:
    if spec.start is not None:
        operation_id = await spec.start(h, prepared, key, arm)
    else:
        assert prepared.input is not None
        arm(new_operation_id(spec.workflow_type.value, prepared.context, key))
        operation = await h.ops.start(
            prepared.context, spec.workflow_type.value, prepared.input, request_key=key
        )
        operation_id = operation.id
    if spec.drive is not None:
        task = asyncio.create_task(spec.drive(h, prepared, operation_id))
        _DRIVERS[operation_id] = task
    return operation_id


# The drive task of each running operation, stopped when its run is checked.
_DRIVERS: dict[str, asyncio.Task[None]] = {}


async def stop_driving(operation_id: str) -> None:
    task = _DRIVERS.pop(operation_id, None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until_history(
    h: Harness, workflow_id: str, done: Callable[[list[EventType.ValueType]], bool]
) -> None:
    """Polls the workflow's history until ``done`` holds for its event types, in order."""
    handle = h.client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        while not done([event.event_type async for event in handle.fetch_history_events()]):
            await asyncio.sleep(0.05)


def _after(
    events: list[EventType.ValueType], first: EventType.ValueType
) -> list[EventType.ValueType]:
    """The events after the first one of type ``first`` (none if there is none)."""
    return events[events.index(first) + 1 :] if first in events else []


async def cancel_reached_the_workflow(h: Harness, workflow_id: str) -> None:
    """The workflow has handled the cancel (its history says so): it asked the held activity
    to stop, or, past its point of no return, finished a task after the request. So the
    cancel reached the workflow before the activity's result."""
    await until_history(
        h,
        workflow_id,
        lambda events: (
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events
            or EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            in _after(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
        ),
    )


async def run_point(h: Harness, spec: SagaSpec, index: int, point: Point) -> None:
    prepared = await spec.prepare(h)
    before = await stores(h, spec.bookkeeping)
    workflow_id, fault = await start_faulted(h, spec, prepared, spec.steps[index], point)
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await fault.reached.wait()
        if point in CANCEL_POINTS:
            await h.ops.cancel(prepared.context, workflow_id, "fault injection")
            if commits(point):
                await cancel_reached_the_workflow(h, workflow_id)
                fault.release.set()
        await ended_as_expected(h, spec, prepared, index, point, workflow_id, fault, before)
    finally:
        clear_faults(h, prepared, workflow_id)
        await stop_driving(workflow_id)


async def run_cancel_with_result(
    h: Harness, workflows: WorkflowWorker, spec: SagaSpec, index: int
) -> None:
    """The step's activity committed; the cancel and its result reach the workflow in one
    task (both happen while no workflow worker runs, then a new one takes over). The step
    counts as done and is compensated like any other (the SDK would drop the result if the
    handle were asked to stop then)."""
    prepared = await spec.prepare(h)
    before = await stores(h, spec.bookkeeping)
    workflow_id, fault = await start_faulted(h, spec, prepared, spec.steps[index], Point.HOLD_AFTER)
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await fault.reached.wait()
        await workflows.kill()
        await h.ops.cancel(prepared.context, workflow_id, "fault injection")
        await history_has(h, workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
        fault.release.set()
        if fault.workflow_id in (None, workflow_id):
            await history_has(
                h,
                workflow_id,
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                after=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            )
        else:  # a child's step: the cancel reaches the child through its parent, later
            await no_activity_in_flight(h, fault.workflow_id)
        await workflows.start()
        await ended_as_expected(
            h, spec, prepared, index, Point.HOLD_AFTER, workflow_id, fault, before
        )
    finally:
        clear_faults(h, prepared, workflow_id)
        await stop_driving(workflow_id)


async def history_has(
    h: Harness,
    workflow_id: str,
    wanted: EventType.ValueType,
    *,
    after: EventType.ValueType | None = None,
) -> None:
    """Waits until the workflow's history holds an event of type ``wanted`` (after one of
    type ``after``)."""
    await until_history(
        h,
        workflow_id,
        lambda events: wanted in (events if after is None else _after(events, after)),
    )


_ACTIVITY_ENDED = frozenset(
    {
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    }
)


async def no_activity_in_flight(h: Harness, workflow_id: str) -> None:
    """Waits until every activity the workflow scheduled has reported its end."""
    await until_history(
        h,
        workflow_id,
        lambda events: (
            events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
            == sum(1 for event in events if event in _ACTIVITY_ENDED)
        ),
    )


async def ended_as_expected(
    h: Harness,
    spec: SagaSpec,
    prepared: Prepared,
    index: int,
    point: Point,
    workflow_id: str,
    fault: Fault,
    before: dict[str, Rows],
) -> None:
    """The faulted run's end: completed with all of it (past the point of no return, or a
    failed item reported), or failed/cancelled with exactly the compensations of what it did
    and none of it left."""
    step = spec.steps[index]
    pivot = spec.step_index(spec.pivot) if spec.pivot is not None else None
    completes = pivot is not None and (
        index > pivot or (index == pivot and (commits(point) or spec.pivot_at_start))
    )
    if point is Point.FAIL and step.item and not completes:
        assert spec.reported is not None, "an item step needs the spec's reported"
        # The failing item is reported, the others went on; the request made again
        # applies it.
        result = await h.completes(prepared.context, workflow_id)
        await spec.reported(h, prepared, result)
        await h.expect_status(workflow_id, WorkflowExecutionStatus.COMPLETED)
        assert fault.runs == 0
        await run_again(h, spec, prepared)
        completes = True
    elif completes:
        result = await h.completes(prepared.context, workflow_id)
        await spec.applied(h, prepared, result)
        await h.expect_status(workflow_id, WorkflowExecutionStatus.COMPLETED)
    else:
        failed = await h.fails(prepared.context, workflow_id)
        await h.expect_status(
            workflow_id,
            WorkflowExecutionStatus.FAILED
            if point is Point.FAIL
            else WorkflowExecutionStatus.CANCELED,
        )
        expected = spec.compensations_after(index, point)
        assert failed.compensations == expected, failed.message
        await not_completed(h, spec, prepared, workflow_id, before)
    if not step.read and not completes:
        assert fault.runs == real_runs(point)


async def not_completed(
    h: Harness, spec: SagaSpec, prepared: Prepared, workflow_id: str, before: dict[str, Rows]
) -> None:
    """A run that ended without completing: none of it is left, or (``resumable``) it says
    so of itself and the request made again completes it."""
    if not spec.resumable:
        check_nothing_left(before, await stores(h, spec.bookkeeping))
        return
    if spec.unfinished is not None:
        await spec.unfinished(h, prepared, workflow_id)
    await run_again(h, spec, prepared)


async def run_again(h: Harness, spec: SagaSpec, prepared: Prepared) -> None:
    """The same request made again (a new request key), undisturbed: all of it applied."""
    operation_id = await start_operation(h, spec, prepared, uuid.uuid4().hex)
    try:
        result = await h.completes(prepared.context, operation_id)
    finally:
        await stop_driving(operation_id)
    try:
        await spec.applied(h, prepared, result)
    except AssertionError as missing:
        raise HalfDone(f"the request made again did not complete it: {missing}") from missing


async def run_kill_point(h: Harness, workflows: WorkflowWorker, spec: SagaSpec, index: int) -> None:
    """The workflow worker process SIGKILLed while the step's activity is in flight; the
    activity commits while no workflow worker runs; a new worker process takes over. The
    operation completes, every step ran once and nothing was done twice."""
    step = spec.steps[index]
    prepared = await spec.prepare(h)
    workflow_id, fault = await start_faulted(h, spec, prepared, step, Point.HOLD_BEFORE)
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await fault.reached.wait()
        await workflows.kill()
        fault.release.set()
        await workflows.start()
        result = await h.completes(prepared.context, workflow_id)
        await spec.applied(h, prepared, result)
        assert fault.runs == 1
        # The same activities as a run nobody interrupted: nothing was scheduled again.
        await check_nothing_repeated(h, spec, workflow_id)
    finally:
        clear_faults(h, prepared, workflow_id)
        await stop_driving(workflow_id)


async def scheduled_activities(h: Harness, workflow_id: str) -> list[str]:
    handle = h.client.get_workflow_handle(workflow_id)
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def run_to_completion(h: Harness, spec: SagaSpec) -> list[str]:
    """A run without faults: everything applied; the activities it scheduled, sorted."""
    prepared = await spec.prepare(h)
    operation_id = await start_operation(h, spec, prepared, uuid.uuid4().hex)
    try:
        result = await h.completes(prepared.context, operation_id)
    finally:
        await stop_driving(operation_id)
    await spec.applied(h, prepared, result)
    return sorted(await scheduled_activities(h, operation_id))


async def mentions(h: Harness, service: str, table: str, *needles: str) -> list[dict[str, Any]]:
    """The rows (column: value) of ``service``'s ``table`` in which every one of ``needles``
    appears."""
    async with h.runtimes[service].db.engine.connect() as conn:
        found = await conn.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608
        rows = [dict(row._mapping) for row in found.all()]
    return [row for row in rows if all(needle in repr(row) for needle in needles)]


# At a random moment (the soak) ----------------------------------------------------------------


async def applied_or_half_done(h: Harness, spec: SagaSpec, prepared: Prepared, result: Any) -> None:
    try:
        await spec.applied(h, prepared, result)
    except AssertionError as missing:
        raise HalfDone(f"completed without all of it: {missing}") from missing


async def run_cancel_at(h: Harness, spec: SagaSpec, delay: float) -> str:
    """Cancelled ``delay`` seconds after the start, wherever it is then: it completed with all
    of it, or ended with none of it."""
    prepared = await spec.prepare(h)
    before = await stores(h, spec.bookkeeping)
    operation_id = await start_operation(h, spec, prepared, uuid.uuid4().hex)
    try:
        await asyncio.sleep(delay)
        await h.ops.cancel(prepared.context, operation_id, "soak")
        try:
            result = await h.completes(prepared.context, operation_id)
        except WorkflowFailed:
            await not_completed(h, spec, prepared, operation_id, before)
            return "resumed" if spec.resumable else "undone"
        await applied_or_half_done(h, spec, prepared, result)
        return "completed"
    finally:
        await stop_driving(operation_id)


async def run_kill_at(h: Harness, workflows: WorkflowWorker, spec: SagaSpec, delay: float) -> str:
    """The workflow worker SIGKILLed ``delay`` seconds after the start, a new one started: the
    operation completes, with all of it, and nothing twice."""
    prepared = await spec.prepare(h)
    operation_id = await start_operation(h, spec, prepared, uuid.uuid4().hex)
    try:
        await asyncio.sleep(delay)
        await workflows.kill()
        await workflows.start()
        result = await h.completes(prepared.context, operation_id)
    finally:
        await stop_driving(operation_id)
    await applied_or_half_done(h, spec, prepared, result)
    await check_nothing_repeated(h, spec, operation_id)
    return "completed"
