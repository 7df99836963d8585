"""``adx histories record``: runs every workflow type through its representative paths
(the scenarios) on the running stack and saves the histories the replay tests check
(``tests/histories/<workflow_type>/<path>.json``), then replays what it wrote.

Failure and cancellation paths use the fault injector in front of the real activities (the
same effect as a stand-in activity registered under the real name): a named activity of one
workflow fails for good, or hangs until cancelled. Nothing else is faked.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from adx.histories.replay import (
    FROZEN_MARK,
    build_replayer,
    describe_replay_failure,
    history_files,
    history_workflow_type,
    replay_all,
)
from adx.histories.scenarios import SCENARIOS, Recorded, ScenarioSpec
from adx.histories.stack import (
    HISTORIES_DIR,
    TEST_KEYS_FILE,
    TestKeyError,
    load_test_keyring,
    recorder_settings,
    running_stack,
)
from adx.settings import Settings
from workflow_client.codec import KeyRing

HELP = "record the workflow histories the replay tests check (tests/histories)"


def select_scenarios(only: Sequence[str]) -> list[ScenarioSpec]:
    if not only:
        return list(SCENARIOS)
    known = {t.value for spec in SCENARIOS for t in spec.workflow_types}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(f"no scenario records {', '.join(unknown)} (known: {sorted(known)})")
    return [s for s in SCENARIOS if any(t.value in only for t in s.workflow_types)]


async def record(out: Path, keyring: KeyRing, only: Sequence[str], base: Settings) -> int:
    chosen = select_scenarios(only)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="adx-histories-") as folder:
        settings = recorder_settings(Path(folder), keyring, base)
        async with running_stack(settings, keyring) as h:
            print(f"dev server and workers up in {time.monotonic() - began:.1f}s")
            runs: list[Recorded] = []
            for spec in chosen:
                step = time.monotonic()
                runs += await spec.run(h)
                print(f"  {spec.name}: {time.monotonic() - step:.1f}s")
            written = [await _write(h.client, run, out) for run in runs]
    await _check_replays(written, keyring)
    kept = sorted(
        path
        for path in set(history_files(out)) - set(written)
        if not only or path.parent.name in only
    )
    print(f"wrote {len(written)} histories under {out} in {time.monotonic() - began:.1f}s")
    for path in kept:
        marker = "frozen" if FROZEN_MARK in path.name else "not produced by any scenario"
        print(f"  kept {path.relative_to(out)} ({marker})")
    return 0


async def _write(client: Client, run: Recorded, out: Path) -> Path:
    history = await client.get_workflow_handle(run.workflow_id).fetch_history()
    found = history_workflow_type(history)
    if found != run.workflow_type:
        raise AssertionError(f"{run.workflow_id} is a {found}, not a {run.workflow_type}")
    if history.events[-1].event_type in _OPEN:
        raise AssertionError(f"{run.workflow_id} is still running")
    path = out / run.workflow_type / f"{run.path}.json"
    if FROZEN_MARK in path.name:
        raise AssertionError(f"{path.name}: '{FROZEN_MARK}' names frozen files; rename the path")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(history.to_json() + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    print(f"  {path.relative_to(out)} ({len(history.events)} events, {digest})")
    return path


_OPEN = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
}


async def _check_replays(paths: Sequence[Path], keyring: KeyRing) -> None:
    """Every written history replays against the code that wrote it (else the code is
    nondeterministic on its own, and the recording is useless)."""
    failures = await replay_all(build_replayer(keyring), paths)
    problems = [
        describe_replay_failure(path.parent.name, path, error)
        for path, error in failures.items()
        if error is not None
    ]
    if problems:
        raise SystemExit("\n".join(problems))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    recorder = sub.add_parser(
        "record",
        help="run every workflow type's paths on an embedded dev server and save the histories",
    )
    recorder.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORKFLOW_TYPE",
        help="record only the scenarios of this workflow type (repeatable)",
    )
    recorder.add_argument("--out", type=Path, default=HISTORIES_DIR, help="where to write")
    recorder.add_argument(
        "--keys", type=Path, default=TEST_KEYS_FILE, help="the TEST key ring (JSON)"
    )
    sub.add_parser("list", help="list the scenarios and the workflow types they record")


def run(args: argparse.Namespace) -> int:
    from adx.logging import configure_logging
    from adx.settings import get_settings

    if args.action == "list":
        for spec in SCENARIOS:
            print(f"{spec.name}: {', '.join(t.value for t in spec.workflow_types)}")
        return 0
    if not args.keys.exists():
        raise SystemExit(
            f"{args.keys} not found: `adx histories record` runs from a repository checkout"
        )
    try:
        keyring = load_test_keyring(args.keys)
    except TestKeyError as error:
        raise SystemExit(str(error)) from None
    base = get_settings()
    configure_logging(base.model_copy(update={"log_level": "ERROR"}))
    started = time.monotonic()
    code = asyncio.run(record(args.out, keyring, args.only, base))
    print(f"done in {time.monotonic() - started:.1f}s")
    return code
