"""The randomized soak: many operations of every saga type, each disturbed at a random point
(a fault at a random step, a cancel or a worker SIGKILL at a random moment), checked like the
deterministic tests. The seed is printed first; the same seed replays the same choices.

    python -m tests.faults.soak --operations 200 [--seed N]

It starts its own stack (a dev server, the services' workers, a workflow worker process) on
free loopback ports and a temporary folder, and stops it at the end. Exit status 1 when any
operation was half done or did something twice.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from adx.histories import Harness, load_test_keyring, recorder_settings, running_stack
from adx.settings import Environment, Settings
from tests.faults.harness import (
    POINT_NAMES,
    POINTS,
    Duplicated,
    HalfDone,
    SagaSpec,
    run_cancel_at,
    run_kill_at,
    run_kill_point,
    run_point,
)
from tests.faults.sagas import SPECS
from tests.support.workflow_worker import WorkflowWorker, workflow_worker

# A cancel lands anywhere in the first 1.2 s (most sagas take less); a kill in the first 1 s.
CANCEL_WITHIN = 1.2
KILL_WITHIN = 1.0


@dataclass
class Tally:
    operations: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    half_done: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.operations} operations, {len(self.half_done)} half-done, "
            f"{len(self.duplicated)} duplicated"
        )


async def one_operation(
    h: Harness, workflows: WorkflowWorker, spec: SagaSpec, rng: random.Random
) -> tuple[str, str]:
    """Runs one disturbed operation; returns (what was done, how it ended)."""
    kind = rng.choice(("point", "point", "cancel", "kill-at", "kill-step"))
    if kind == "point":
        index, point = rng.randrange(len(spec.steps)), rng.choice(POINTS)
        await run_point(h, spec, index, point)
        return f"{spec.steps[index].name} {POINT_NAMES[point]}", POINT_NAMES[point]
    if kind == "cancel":
        delay = round(rng.uniform(0, CANCEL_WITHIN), 3)
        return f"cancel after {delay}s", await run_cancel_at(h, spec, delay)
    if kind == "kill-at":
        delay = round(rng.uniform(0, KILL_WITHIN), 3)
        return f"kill after {delay}s", await run_kill_at(h, workflows, spec, delay)
    index = rng.randrange(len(spec.steps))
    await run_kill_point(h, workflows, spec, index)
    return f"kill in {spec.steps[index].name}", "completed"


async def soak(
    h: Harness,
    workflows: WorkflowWorker,
    operations: int,
    seed: int,
    say: Callable[[str], None] = print,
) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    specs = list(SPECS.values())
    for number in range(1, operations + 1):
        spec = rng.choice(specs)
        label = f"#{number} {spec.workflow_type.value}"
        try:
            what, outcome = await one_operation(h, workflows, spec, rng)
        except HalfDone as error:
            tally.half_done.append(f"{label}: {error}")
            outcome, what = "half-done", str(error)[:200]
        except Duplicated as error:
            tally.duplicated.append(f"{label}: {error}")
            outcome, what = "duplicated", str(error)[:200]
        finally:
            tally.operations += 1
            if workflows.process is None:  # a kill that failed half-way
                await workflows.start()
        tally.outcomes[outcome] += 1
        say(f"{label}: {what} -> {outcome}")
    return tally


async def main(operations: int, seed: int) -> int:
    print(f"soak: {operations} operations, seed {seed}", flush=True)
    began = time.monotonic()
    keyring = load_test_keyring()
    with tempfile.TemporaryDirectory(prefix="adx-soak-") as folder:
        base = Settings(_env_file=None, environment=Environment.TEST)
        settings = recorder_settings(Path(folder), keyring, base)
        async with AsyncExitStack() as stack:
            h = await stack.enter_async_context(running_stack(settings, keyring, workflows=False))
            workflows = await stack.enter_async_context(
                workflow_worker(h.settings, Path(folder) / "workflow-worker.log")
            )
            tally = await soak(h, workflows, operations, seed)
    for problem in tally.half_done + tally.duplicated:
        print(f"  {problem}")
    print(f"outcomes: {dict(tally.outcomes)} in {time.monotonic() - began:.0f} s (seed {seed})")
    print(tally.summary())
    return 0 if not tally.half_done and not tally.duplicated else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: a new random one")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    sys.exit(asyncio.run(main(args.operations, seed)))
