"""One stack for every fault-injection test: the history recorder's, on a dev server of its
own, its activities in this process behind the fault injector, its workflows in a worker
process of their own that the kill tests SIGKILL (tests/faults/harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from adx.histories import Harness, load_test_keyring, recorder_settings, running_stack
from adx.settings import Settings
from tests.support.workflow_worker import WorkflowWorker, workflow_worker


@dataclass
class FaultStack:
    h: Harness
    workflows: WorkflowWorker


@pytest.fixture(scope="session")
async def stack(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultStack]:
    keyring = load_test_keyring()
    folder = tmp_path_factory.mktemp("faults")
    settings = recorder_settings(folder, keyring, base_settings)
    async with (
        running_stack(settings, keyring, workflows=False) as h,
        workflow_worker(h.settings, folder / "workflow-worker.log") as workflows,
    ):
        yield FaultStack(h, workflows)


@pytest.fixture
async def harness(stack: FaultStack) -> Harness:
    if stack.workflows.process is None:  # a kill test failed before starting it again
        await stack.workflows.start()
    return stack.h
