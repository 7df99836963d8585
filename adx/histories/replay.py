"""Replaying the committed histories (``tests/histories/<workflow_type>/<path>.json``): the
replayer (same data converter, interceptors and sandbox as production workers), the history
file reader and what a failing replay prints. The replay tests and ``adx histories record``
(which replays what it wrote) share it.

Files whose name contains ``-before-`` (``FROZEN_MARK``) are histories of older code (a
patched workflow's history from before the patch): no scenario produces them, the recorder
never overwrites or removes them, and they keep replaying until the patch is removed
(CONTRIBUTING.md).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import temporalio.worker
import temporalio.workflow
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from adx.histories.stack import HISTORIES_DIR, NAMESPACE, service_definitions
from adx.settings import REPO_ROOT, Environment, Settings
from workflow_client.codec import KeyRing
from workflow_client.connect import client_interceptors
from workflow_client.converter import build_data_converter
from workflow_client.worker import sandbox_runner

FROZEN_MARK = "-before-"


def all_workflows() -> list[type]:
    """Every workflow class of every service."""
    return [wf for definition in service_definitions().values() for wf in definition.workflows]


def workflow_type_of(cls: type) -> str:
    name = temporalio.workflow._Definition.must_from_class(cls).name
    assert name is not None
    return name


def replay_settings(keyring: KeyRing) -> Settings:
    """Settings whose only job is to describe the replayer's converter and interceptors."""
    return Settings(
        environment=Environment.TEST,
        encryption_keys={
            k: SecretStr(base64.b64encode(v).decode()) for k, v in keyring.keys.items()
        },
        encryption_active_key_id=keyring.active_key_id,
    )


def build_replayer(
    keyring: KeyRing, workflows: Sequence[type] | None = None, settings: Settings | None = None
) -> Replayer:
    """A replayer configured like a production worker: the project's data converter, the
    client interceptors (context propagation, tracing) and the same sandbox."""
    settings = settings or replay_settings(keyring)
    interceptors = [
        interceptor
        for interceptor in client_interceptors(settings)
        if isinstance(interceptor, temporalio.worker.Interceptor)
    ]
    return Replayer(
        workflows=list(workflows if workflows is not None else all_workflows()),
        data_converter=build_data_converter(keyring),
        interceptors=interceptors,
        workflow_runner=sandbox_runner(),
        namespace=NAMESPACE,
    )


def history_files(root: Path = HISTORIES_DIR) -> list[Path]:
    """Every committed history: ``<root>/<workflow_type>/<path>.json``."""
    return sorted(path for path in root.glob("*/*.json") if path.is_file())


def load_history(path: Path) -> WorkflowHistory:
    """A history file as written by the recorder (``WorkflowHistory.to_json``) or by
    ``temporal workflow show --output json``. The workflow id comes from the started event
    (child workflow ids derive from it, so replay needs the real one)."""
    document = json.loads(path.read_text())
    history = WorkflowHistory.from_json("unknown", document)
    started = history.events[0].workflow_execution_started_event_attributes
    workflow_id = started.workflow_id or path.stem
    return WorkflowHistory(workflow_id, history.events)


async def replay_all(replayer: Replayer, paths: Sequence[Path]) -> dict[Path, BaseException | None]:
    """Replays every file with one replayer worker (one sandbox validation of every
    workflow class, not one per file); each file's failure, or None."""
    histories = {path: load_history(path) for path in paths}
    by_run: dict[str, Path] = {}
    for path, history in histories.items():
        if history.run_id in by_run:
            raise ValueError(f"{path} and {by_run[history.run_id]} are the same run")
        by_run[history.run_id] = path

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories.values():
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures: dict[Path, BaseException | None] = dict.fromkeys(paths)
    for run_id, error in results.replay_failures.items():
        failures[by_run[run_id]] = error
    return failures


def history_workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The ids of the ``workflow.patched`` markers recorded in a history."""
    found: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name != "core_patch":
            continue
        for details in attributes.details.values():  # "patch-data": {"id": ..., ...}
            for payload in details.payloads:
                patch_id = json.loads(payload.data).get("id")
                if isinstance(patch_id, str):
                    found.append(patch_id)
    return found


# The core's message inside the SDK's error text: message: "[TMPRL1100] Nondeterminism ..."
_MISMATCH = re.compile(r'(Nondeterminism error: (?:[^"\\\n]|\\.)*)')


def describe_replay_failure(workflow_type: str, path: Path, error: BaseException) -> str:
    """What a failing replay prints: the workflow, the file and the first mismatch."""
    text = str(error) or type(error).__name__
    found = _MISMATCH.search(text)
    mismatch = found.group(1).strip() if found else text.strip().splitlines()[0]
    try:
        shown: Path | str = path.relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    return (
        f"workflow {workflow_type!r} no longer replays its recorded history {shown}: "
        f"first mismatch: {mismatch}\n"
        "An incompatible change to running workflows: guard it with workflow.patched(...) "
        "(CONTRIBUTING.md, 'Changing a workflow safely')."
    )
