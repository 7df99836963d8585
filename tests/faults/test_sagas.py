"""Every saga of every service, at every step, under every fault (tests/faults/harness.py);
the specs are in the specs_<service>.py modules beside this one."""

from __future__ import annotations

import os

import pytest

from adx.faults import Point
from adx.histories import Harness
from tests.faults.conftest import FaultStack
from tests.faults.harness import (
    POINT_NAMES,
    POINTS,
    SagaSpec,
    run_cancel_with_result,
    run_kill_point,
    run_point,
    run_to_completion,
)
from tests.faults.sagas import SPECS

CASES = [
    pytest.param(spec, index, point, id=f"{name}-{step.name}-{POINT_NAMES[point]}")
    for name, spec in SPECS.items()
    for index, step in enumerate(spec.steps)
    for point in POINTS
]
# An attempt that committed and lost its answer is retried; the retry finds its own change
# and must still hand the compensation what was there before the operation.
RETRIES = [
    pytest.param(spec, index, id=f"{name}-{step.name}")
    for name, spec in SPECS.items()
    for index, step in enumerate(spec.steps)
    if step.compensated and not step.read
]
KILLS = [
    pytest.param(spec, index, id=f"{name}-{step.name}")
    for name, spec in SPECS.items()
    for index, step in enumerate(spec.steps)
]
# Reads are abandoned on a cancel: only a step that changes something has a result to keep.
# The kernel's handling is the same at every step; `make test` runs every step of tenant
# provisioning (a worker restart each, about 8 s); ADX_FAULT_RACES=all adds each other saga's
# first changing step (15 more, about 2 minutes: run it when the kernel changes).
ALL_RACES = os.environ.get("ADX_FAULT_RACES") == "all"
RACES = [
    pytest.param(spec, index, id=f"{name}-{step.name}")
    for name, spec in SPECS.items()
    for index, step in enumerate(spec.steps)
    if not step.read
    and (
        name == "tenant_provisioning"
        or (ALL_RACES and index == next(i for i, s in enumerate(spec.steps) if not s.read))
    )
]


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
async def test_completes_with_everything_applied(harness: Harness, spec: SagaSpec) -> None:
    await run_to_completion(harness, spec)


@pytest.mark.parametrize(("spec", "index", "point"), CASES)
async def test_all_or_nothing_at_every_step(
    harness: Harness, spec: SagaSpec, index: int, point: Point
) -> None:
    await run_point(harness, spec, index, point)


@pytest.mark.parametrize(("spec", "index"), RETRIES)
async def test_a_retried_step_is_undone_to_what_was_there_before(
    harness: Harness, spec: SagaSpec, index: int
) -> None:
    await run_point(harness, spec, index, Point.LOST_ANSWER)


@pytest.mark.parametrize(("spec", "index"), KILLS)
async def test_a_killed_worker_loses_and_repeats_nothing(
    stack: FaultStack, harness: Harness, spec: SagaSpec, index: int
) -> None:
    await run_kill_point(harness, stack.workflows, spec, index)


@pytest.mark.parametrize(("spec", "index"), RACES)
async def test_a_result_arriving_with_the_cancel_is_kept(
    stack: FaultStack, harness: Harness, spec: SagaSpec, index: int
) -> None:
    await run_cancel_with_result(harness, stack.workflows, spec, index)
