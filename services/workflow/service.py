"""The workflow service (port setting ``workflow``, task queue ``workflow-task-queue``): the
cross-service worker and the operations monitoring API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contracts.names import TaskQueue
from services.common.service import ServiceDefinition, ServiceRuntime
from services.workflow.activities import WorkflowActivities, exports_dir
from services.workflow.api import routes
from services.workflow.store import WorkflowStore
from services.workflow.workflows import WORKFLOWS


def _activities(runtime: ServiceRuntime) -> Sequence[Callable[..., Any]]:
    return WorkflowActivities(WorkflowStore(runtime.db), runtime.settings).all()


async def _on_start(runtime: ServiceRuntime) -> None:
    """The exports folder exists (private to the service). No dev seed data of its own: the
    seeded users and tenants live in the other services."""
    exports_dir(runtime.settings).mkdir(parents=True, exist_ok=True, mode=0o700)


SERVICE = ServiceDefinition(
    name="workflow",
    task_queue=TaskQueue.WORKFLOW,
    migrations=Path(__file__).parent / "migrations",
    routes=routes,
    workflows=WORKFLOWS,
    activities=_activities,
    on_start=_on_start,
)
