"""The Kubernetes resources of every ADX process, written from the launcher's registry.

``adx deploy manifests`` writes ``deploy/k8s/base/processes.yaml``: one Deployment per process
and mode (so workers scale apart from servers), a Service for each that serves HTTP, a
PodDisruptionBudget for each, and a HorizontalPodAutoscaler for workers and BFFs. The command,
port and probes of each come from :func:`adx.devstack.registry.build_registry`, the list
``adx dev`` runs, so a process added there reaches Kubernetes by running the command again
(``--check``, run by the tests, fails while the file is stale). Everything the processes share
(settings, secrets, volumes, network policies) is written by hand beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adx.devstack.registry import build_registry, router_spec
from adx.devstack.spec import ProcessSpec
from adx.healthcheck import readiness_path
from adx.settings import REPO_ROOT, Settings

OUTPUT = REPO_ROOT / "deploy" / "k8s" / "base" / "processes.yaml"
IMAGE = "adx-core"
ROUTER_IMAGE = "adx-core-router"
# Inside a pod a worker serves its probes here (ADX_WORKER_HEALTH_PORT, the ConfigMap's).
WORKER_HEALTH_PORT = 8090
# The worker's drain (ADX_WORKER_SHUTDOWN_GRACE_SECONDS, 30 by default) plus a margin.
WORKER_TERMINATION_GRACE_SECONDS = 45
# A container writes only here (the root filesystem is read-only).
DATA_DIR = "/var/lib/adx"
# Volumes two modes of one service share: uploads (file) and compliance exports (workflow).
SHARED_VOLUMES = {
    "file": ("files", f"{DATA_DIR}/files"),
    "workflow": ("exports", f"{DATA_DIR}/exports"),
}
HEADER = (
    "# Written by `adx deploy manifests` from the launcher's registry (adx/devstack/registry.py):\n"
    "# edit that, or adx/manifests.py, and run the command again; never edit this file.\n"
)


@dataclass(frozen=True)
class Process:
    """One process as Kubernetes runs it."""

    name: str  # the registry's: auth_server, bff_user, ...
    command: tuple[str, ...]  # what follows `python -m adx`
    port: int | None
    readiness_path: str

    @property
    def k8s_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def role(self) -> str:
        if self.name.endswith("_worker"):
            return "worker"
        if self.name.startswith("bff_"):
            return "bff"
        if self.name.endswith("_server") and self.name != "codec_server":
            return "service"
        return self.k8s_name  # gateway, router, codec-server

    @property
    def service(self) -> str | None:
        """The backend service a server or worker belongs to."""
        if self.role in ("service", "worker"):
            return self.name.rpartition("_")[0]
        return None


def processes(settings: Settings | None = None) -> list[Process]:
    """Every process of the registry but the embedded Temporal, the router included."""
    settings = settings or Settings(_env_file=None, temporal_address="temporal:7233")
    specs = list(build_registry(settings).processes)
    if not any(spec.name == "router" for spec in specs):  # listed only when installed
        specs.append(router_spec(settings))
    return [_process(spec) for spec in specs if spec.name != "temporal"]


def _process(spec: ProcessSpec) -> Process:
    command = tuple(spec.argv[3:])  # (python, -m, adx, ...)
    if spec.name == "router":
        command += ("--committed",)  # the image serves the committed supergraph
    port = spec.ports[0].port if spec.ports else None
    return Process(spec.name, command, port, readiness_path(spec.name))


def labels(process: Process) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "adx-core",
        "app.kubernetes.io/component": process.k8s_name,
        "adx.dev/role": process.role,
    }


def deployment(process: Process) -> dict[str, Any]:
    probe_port = process.port or WORKER_HEALTH_PORT
    worker = process.role == "worker"
    mounts = [{"name": "data", "mountPath": DATA_DIR}, {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    volumes: list[dict[str, Any]] = [
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if process.service in SHARED_VOLUMES:
        claim, path = SHARED_VOLUMES[process.service]
        mounts.append({"name": claim, "mountPath": path})
        volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": f"adx-{claim}"}})
    container: dict[str, Any] = {
        "name": process.k8s_name,
        "image": ROUTER_IMAGE if process.name == "router" else IMAGE,
        "args": list(process.command),
        "env": [{"name": "ADX_PROCESS", "value": process.name}],
        "envFrom": [
            {"configMapRef": {"name": "adx-settings"}},
            {"secretRef": {"name": "adx-secrets"}},
        ],
        "ports": [{"name": "http", "containerPort": probe_port}],
        "startupProbe": _probe("/healthz", period=2, failures=45),
        "livenessProbe": _probe("/healthz", period=20, failures=3),
        "readinessProbe": _probe(process.readiness_path, period=10, failures=2),
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi" if process.name == "router" else "768Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod_labels = labels(process)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app.kubernetes.io/component": process.k8s_name}},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": WORKER_TERMINATION_GRACE_SECONDS if worker else 30,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 0,
                    "fsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if not _autoscaled(process):  # an autoscaled Deployment leaves its replicas to the HPA
        spec = {"replicas": 1, **spec}
    return _resource("apps/v1", "Deployment", process, spec)


def service(process: Process) -> dict[str, Any]:
    assert process.port is not None
    spec = {
        "selector": {"app.kubernetes.io/component": process.k8s_name},
        "ports": [{"name": "http", "port": process.port, "targetPort": "http"}],
    }
    return _resource("v1", "Service", process, spec)


def disruption_budget(process: Process) -> dict[str, Any]:
    spec = {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/component": process.k8s_name}},
    }
    return _resource("policy/v1", "PodDisruptionBudget", process, spec)


def autoscaler(process: Process) -> dict[str, Any]:
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": process.k8s_name},
        "minReplicas": 1,
        "maxReplicas": 5,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
    }
    return _resource("autoscaling/v2", "HorizontalPodAutoscaler", process, spec)


def resources(settings: Settings | None = None) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for process in processes(settings):
        documents.append(deployment(process))
        if process.port is not None:
            documents.append(service(process))
        documents.append(disruption_budget(process))
        if _autoscaled(process):
            documents.append(autoscaler(process))
    return documents


def render(settings: Settings | None = None) -> str:
    body: str = yaml.safe_dump_all(resources(settings), sort_keys=False, width=100)
    return HEADER + body


def write(*, check: bool, output: Path = OUTPUT) -> int:
    """Writes the file (0), or with ``check`` only compares it (1 when it is stale)."""
    rendered = render()
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if check:
        if current == rendered:
            return 0
        print(f"{output.relative_to(REPO_ROOT)} is stale: run `adx deploy manifests`")
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered, encoding="utf-8")
    print(f"wrote {output.relative_to(REPO_ROOT)}")
    return 0


def _autoscaled(process: Process) -> bool:
    return process.role in ("worker", "bff")


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _resource(api: str, kind: str, process: Process, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": process.k8s_name, "labels": labels(process)},
        "spec": spec,
    }
