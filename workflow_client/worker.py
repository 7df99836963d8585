"""Workers share the client's converter and interceptors by being built from that client.

``deployment_config`` (from :func:`workflow_client.versioning.deployment_config`) makes the
worker a version of its service's Worker Deployment; None keeps it unversioned."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowInstance,
    WorkflowInstanceDetails,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Passed through the workflow sandbox: `contracts` must be the same module inside and
# outside it, or the propagated RequestContext would live in a copy workflows never see.
PASSTHROUGH_MODULES = ("contracts", "pydantic", "pydantic_core", "structlog")

# A cancel reaches a running activity only in the answer to one of its heartbeats, and the
# SDK sends those at most every 0.8 x heartbeat timeout (30 s without one). Workflows wait
# for a cancelled forward activity to end (services/common/steps.py), so this bounds how long
# a user's cancel takes: a heartbeat a second is cheap next to a 24 s wait.
HEARTBEAT_THROTTLE = timedelta(seconds=1)


class UnversionedRunner(UnsandboxedWorkflowRunner):
    """Runs workflows without the versioning behavior their ``@workflow.defn`` declares.

    The server refuses a workflow task completion that names a versioning behavior from a
    worker that is not versioned ("versioning behavior cannot be specified without
    deployment options being set with versioned mode"), and the SDK sends the declared one
    regardless. Unversioned workers (dev, tests) therefore drop it; versioned workers keep
    it. Instantiated inside the sandbox for each run, so this module imports little.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        if det.defn.versioning_behavior not in (None, VersioningBehavior.UNSPECIFIED):
            defn = dataclasses.replace(det.defn, versioning_behavior=VersioningBehavior.UNSPECIFIED)
            det = dataclasses.replace(det, defn=defn)
        return super().create_instance(det)


def sandbox_runner(*, versioned: bool = False) -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    if versioned:
        return SandboxedWorkflowRunner(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions, runner_class=UnversionedRunner)


def create_worker(
    client: Client,
    *,
    task_queue: str,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    deployment_config: WorkerDeploymentConfig | None = None,
    **options: Any,
) -> Worker:
    versioned = deployment_config is not None and deployment_config.use_worker_versioning
    if deployment_config is not None:
        options["deployment_config"] = deployment_config
    options.setdefault("max_heartbeat_throttle_interval", HEARTBEAT_THROTTLE)
    options.setdefault("default_heartbeat_throttle_interval", HEARTBEAT_THROTTLE)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        workflow_runner=sandbox_runner(versioned=versioned),
        **options,
    )
