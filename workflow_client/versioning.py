"""Worker Versioning: which Worker Deployment Version a service's worker belongs to, and
promoting a version to current.

Each service is deployed on its own, so each has its own Worker Deployment, named
``<settings.worker_deployment_name>-<service>`` (``adx-core-tenant``...). A worker started with
``settings.worker_build_id`` joins that deployment as that build; without a build id it is
unversioned (the dev default: no promotion step needed).

With versioning on, new workflow executions go to the deployment's *current* version; a
``PINNED`` workflow then stays on the build it started on until it ends, an ``AUTO_UPGRADE``
workflow moves to the new current version at its next workflow task (so its code must replay
the old history: patching). Promoting a version is ``adx deploy set-current --build-id ...``;
see CONTRIBUTING.md "Changing a workflow safely".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from adx.settings import Settings

__all__ = [
    "DeploymentState",
    "VersionNotReady",
    "deployment_config",
    "deployment_name",
    "describe_deployment",
    "execution_version",
    "set_current_version",
]

DEFAULT_IDENTITY = "adx deploy"


class VersionNotReady(RuntimeError):
    """The build has not polled the deployment's task queues yet (or never will)."""


def deployment_name(settings: Settings, service: str) -> str:
    """The Worker Deployment of one service's workers."""
    name = f"{settings.worker_deployment_name}-{service}"
    if "." in name:
        # The server writes versions as "<deployment>.<build id>".
        raise ValueError(f"worker deployment name {name!r} must not contain '.'")
    return name


def deployment_config(settings: Settings, service: str) -> WorkerDeploymentConfig | None:
    """The worker's deployment version when ``worker_build_id`` is set, else None (unversioned).

    No default behavior: every workflow class declares its own (``@workflow.defn(
    versioning_behavior=...)``), and the SDK refuses to start a versioned worker with a
    workflow that does not.
    """
    if not settings.worker_build_id:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=deployment_name(settings, service),
            build_id=settings.worker_build_id,
        ),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.UNSPECIFIED,
    )


async def set_current_version(
    client: Client,
    deployment: str,
    build_id: str,
    *,
    wait_seconds: float = 30.0,
    identity: str = DEFAULT_IDENTITY,
) -> None:
    """Makes ``build_id`` the current version of ``deployment``: new executions (and
    auto-upgrade ones at their next task) go to it; pinned ones stay where they are.

    The server refuses a build none of whose workers has polled yet; this retries for up to
    ``wait_seconds`` (a just-started worker takes a moment), then raises VersionNotReady.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.2
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build_id,
                    identity=identity,
                )
            )
            return
        except RPCError as error:
            if not _not_ready(error):
                raise
            if loop.time() >= deadline:
                raise VersionNotReady(
                    f"build {build_id!r} of worker deployment {deployment!r} has no workers "
                    f"polling yet ({error.message}); start them first"
                ) from error
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


@dataclass(frozen=True)
class DeploymentState:
    """What ``adx deploy describe`` shows of one deployment."""

    name: str
    current_build_id: str | None
    ramping_build_id: str | None
    # build id -> status: "current", "ramping", "draining" (pinned runs still open),
    # "drained" (its workers may stop), "inactive"
    versions: dict[str, str]


async def describe_deployment(client: Client, deployment: str) -> DeploymentState | None:
    """The deployment's current and ramping builds and each version's drainage; None when
    no versioned worker of it has polled yet."""
    try:
        response = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = response.worker_deployment_info
    routing = info.routing_config
    versions: dict[str, str] = {}
    for summary in info.version_summaries:
        status = WorkerDeploymentVersionStatus.Name(summary.status)
        versions[summary.deployment_version.build_id] = status.removeprefix(
            "WORKER_DEPLOYMENT_VERSION_STATUS_"
        ).lower()
    return DeploymentState(
        name=deployment,
        current_build_id=routing.current_deployment_version.build_id or None,
        ramping_build_id=routing.ramping_deployment_version.build_id or None,
        versions=versions,
    )


def execution_version(description: WorkflowExecutionDescription) -> WorkerDeploymentVersion | None:
    """The deployment version a workflow execution runs on (pinned or last completed task)."""
    info = description.raw_description.workflow_execution_info
    if not info.HasField("versioning_info"):
        return None
    version = info.versioning_info.deployment_version
    if not version.build_id:
        return None
    return WorkerDeploymentVersion(
        deployment_name=version.deployment_name, build_id=version.build_id
    )


def _not_ready(error: RPCError) -> bool:
    if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
        return True
    text = error.message.lower()
    return "not found" in text or "no pollers" in text or "have pollers" in text
