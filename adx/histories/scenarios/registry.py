"""What a scenario is and the registry the ``@scenario`` decorator fills: a scenario drives
the running stack through one workflow type's paths and returns the runs to save."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adx.histories.stack import Harness
from contracts.names import WorkflowType
from workflow_client.errors import WorkflowFailed


@dataclass(frozen=True)
class Recorded:
    workflow_type: str
    path: str
    workflow_id: str


Scenario = Callable[[Harness], Awaitable[list[Recorded]]]


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    workflow_types: tuple[WorkflowType, ...]
    run: Scenario


SCENARIOS: list[ScenarioSpec] = []


def scenario(*workflow_types: WorkflowType) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS.append(ScenarioSpec(fn.__name__, workflow_types, fn))
        return fn

    return register


def recorded(workflow_type: WorkflowType, path: str, workflow_id: str) -> list[Recorded]:
    return [Recorded(workflow_type.value, path, workflow_id)]


def _compensated(failed: WorkflowFailed, first_step: str) -> None:
    """The run took its compensation path: completed steps undone, newest first, down to
    the first one."""
    if not failed.compensations or failed.compensations[-1] != first_step:
        raise AssertionError(
            f"{failed.operation_id}: expected compensations ending with {first_step!r}, "
            f"got {failed.compensations} ({failed.message})"
        )
