"""Every committed history (tests/histories) replays against the current workflow code, with
the data converter, interceptors and sandbox of a production worker. A change that running
workflows could not survive fails here, naming the workflow, the file and the first mismatch.

Record the histories with ``adx histories record``; CONTRIBUTING.md says when and how.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.common import VersioningBehavior
from temporalio.workflow import NondeterminismError, _Definition

from adx.histories import (
    FROZEN_MARK,
    HISTORIES_DIR,
    TEST_KEY_PREFIX,
    all_workflows,
    build_replayer,
    describe_replay_failure,
    history_files,
    history_workflow_type,
    load_history,
    load_test_keyring,
    patch_markers,
    replay_all,
    workflow_type_of,
)
from contracts.names import WorkflowType
from services.common.steps import KERNEL_PATCH
from tests.replay.broken import ReorderedComplianceExportWorkflow

HISTORIES = history_files()
KEYRING = load_test_keyring()
PROVISIONING_PATCH = "tenant-provisioning-audit-v2"
GRANTEE_CHECK_PATCH = "file-sharing-grantee-check"


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.fixture(scope="module")
async def replayed() -> dict[Path, BaseException | None]:
    """Every history replayed once, by one replayer (each test reports its own file)."""
    return await replay_all(build_replayer(KEYRING), HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=_id)
def test_recorded_history_replays_on_the_current_code(
    replayed: dict[Path, BaseException | None], path: Path
) -> None:
    workflow_type = history_workflow_type(load_history(path))
    assert workflow_type == path.parent.name, f"{path} holds a {workflow_type} history"
    failure = replayed[path]
    if failure is not None:
        pytest.fail(describe_replay_failure(workflow_type, path, failure), pytrace=False)


def test_every_workflow_type_has_recorded_histories() -> None:
    implemented = {workflow_type_of(cls) for cls in all_workflows()}
    recorded = {path.parent.name for path in HISTORIES}
    missing = sorted(implemented - recorded)
    assert not missing, (
        f"no recorded history for {missing}: add a scenario to adx/histories/scenarios/ and run "
        "`adx histories record`"
    )
    # A workflow type nobody implements any more leaves running executions without a worker.
    orphaned = sorted(recorded - implemented)
    assert not orphaned, f"histories of workflow types no service implements: {orphaned}"
    assert implemented <= {t.value for t in WorkflowType}


async def test_a_reordered_copy_of_a_workflow_fails_to_replay_its_history() -> None:
    """The proof the suite catches a breaking change: compliance_export with two steps
    swapped (tests/replay/broken.py) against the history the real one recorded."""
    path = HISTORIES_DIR / "compliance_export" / "success.json"
    broken = build_replayer(KEYRING, workflows=[ReorderedComplianceExportWorkflow])
    history = load_history(path)
    result = await broken.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
    message = describe_replay_failure(history_workflow_type(history), path, result.replay_failure)
    assert "'compliance_export'" in message
    assert "tests/histories/compliance_export/success.json" in message
    # The first mismatching command: the user export scheduled where the tenant one ran.
    assert "Nondeterminism error" in message
    assert "user.export_user_data" in message
    assert "tenant.export_user_data" in message
    # The same history replays on the real code (the parametrized test), so the copy's
    # reordering is what fails.
    real = await build_replayer(KEYRING).replay_workflow(history, raise_on_replay_failure=False)
    assert real.replay_failure is None


def test_the_patched_provisioning_has_histories_from_before_and_after_the_patch() -> None:
    """Both replay (the parametrized test); this checks they are what their names say."""
    folder = HISTORIES_DIR / "tenant_provisioning"
    before = load_history(folder / "success-v1-before-patch.json")
    after = load_history(folder / "success.json")
    assert PROVISIONING_PATCH not in patch_markers(before)
    assert PROVISIONING_PATCH in patch_markers(after)


@pytest.mark.parametrize("name", ["success", "failure-compensated"])
def test_the_patched_sharing_has_histories_from_before_and_after_the_grantee_check(
    name: str,
) -> None:
    """file_sharing's grantee check is patched in: each path replays from before the patch
    (no marker, no check) and after it (the marker and the check_grantee step)."""
    folder = HISTORIES_DIR / "file_sharing"
    before = load_history(folder / f"{name}-v1-before-grantee-check.json")
    after = load_history(folder / f"{name}.json")
    assert GRANTEE_CHECK_PATCH not in patch_markers(before)
    assert GRANTEE_CHECK_PATCH in patch_markers(after)
    assert GRANTEE_CHECK_PATCH in patch_markers(load_history(folder / "grantee-not-a-member.json"))


def test_runs_recorded_on_the_step_kernel_carry_its_patch_marker() -> None:
    """Every current history that ran a step records KERNEL_PATCH (so a cancel waits for a
    running step); the frozen ``-before-steps-kernel`` ones do not, and replay as they ran."""
    for path in HISTORIES:
        markers = patch_markers(load_history(path))
        if "before-steps-kernel" in path.name:
            assert KERNEL_PATCH not in markers, path
        elif FROZEN_MARK not in path.name and _scheduled_anything(path):
            assert KERNEL_PATCH in markers, path


def _scheduled_anything(path: Path) -> bool:
    return any(
        event.HasField("activity_task_scheduled_event_attributes")
        or event.HasField("marker_recorded_event_attributes")
        for event in load_history(path).events
    )


def test_frozen_histories_are_only_histories_of_older_code() -> None:
    """``-before-`` files are never re-recorded: each must name the patch it predates by
    lacking a marker the newest history of the same path carries."""
    for path in HISTORIES:
        if FROZEN_MARK not in path.name:
            continue
        newest = path.with_name(path.name.split(FROZEN_MARK)[0].rsplit("-v", 1)[0] + ".json")
        assert newest.exists(), f"{path}: no current history {newest.name} beside it"
        added = set(patch_markers(load_history(newest))) - set(patch_markers(load_history(path)))
        assert added, f"{path} has every patch marker of {newest.name}: it is not older code"


def _payloads(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        if "metadata" in node and "encoding" in node["metadata"]:
            yield path, node
            return
        for key, value in node.items():
            yield from _payloads(value, (*path, key))
    elif isinstance(node, list):
        for value in node:
            yield from _payloads(value, path)


# Never through the codec: search attributes and headers (ids and roles only, by design),
# and what the SDK core writes into markers itself (a patch's id, a local activity's id and
# type; the local activity's result is encrypted like any other).
_PLAIN = {"searchAttributes", "header"}
_CORE_MARKER_DETAILS = {"patch-data", "data"}


def _plain(where: tuple[str, ...]) -> bool:
    if _PLAIN.intersection(where):
        return True
    return "markerRecordedEventAttributes" in where and where[-2] in _CORE_MARKER_DETAILS


def test_history_payloads_are_encrypted_with_the_test_key_only() -> None:
    encrypted = base64.b64encode(b"binary/encrypted").decode()
    checked = 0
    for path in HISTORIES:
        document = json.loads(path.read_text())
        for where, payload in _payloads(document):
            if _plain(where):
                continue
            metadata = payload["metadata"]
            assert metadata["encoding"] == encrypted, f"{path}: plaintext payload at {where}"
            key_id = base64.b64decode(metadata["encryption-key-id"]).decode()
            assert key_id.startswith(TEST_KEY_PREFIX), f"{path}: key {key_id!r} at {where}"
            checked += 1
    assert checked > len(HISTORIES)  # every history has at least its input and an outcome


def test_every_workflow_declares_its_versioning_behavior() -> None:
    """A versioned worker refuses to start with a workflow that does not (the SDK checks);
    this says so before a deployment does."""
    undeclared = [
        workflow_type_of(cls)
        for cls in all_workflows()
        if _Definition.must_from_class(cls).versioning_behavior
        in (None, VersioningBehavior.UNSPECIFIED)
    ]
    assert not undeclared, (
        f"declare @workflow.defn(versioning_behavior=...) on {undeclared} "
        "(PINNED for long waits, AUTO_UPGRADE for short runs; CONTRIBUTING.md)"
    )
