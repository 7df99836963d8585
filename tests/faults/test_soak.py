"""A short randomized soak in every test run (the long one: ``python -m tests.faults.soak``);
its seed is in the output, so a failure can be replayed with ``--seed``."""

from __future__ import annotations

import random

from tests.faults.conftest import FaultStack
from tests.faults.soak import soak

OPERATIONS = 12


async def test_a_short_soak_leaves_nothing_half_done_or_twice(stack: FaultStack) -> None:
    seed = random.SystemRandom().randrange(2**32)
    lines: list[str] = [f"seed {seed}"]
    tally = await soak(stack.h, stack.workflows, OPERATIONS, seed, say=lines.append)
    report = "\n".join(lines)
    assert tally.operations == OPERATIONS, report
    assert tally.half_done == [], report
    assert tally.duplicated == [], report
