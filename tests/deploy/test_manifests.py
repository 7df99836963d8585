"""What ships: docker-compose.yml (with its offline override) valid for Docker's compose, every
Kubernetes overlay rendered and valid against the Kubernetes schemas (unknown fields refused),
and all three — the dev launcher's registry, compose and Kubernetes — running the same
processes with the same commands, ports and settings names."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from adx.healthcheck import health_port
from adx.manifests import WORKER_HEALTH_PORT, Process, processes
from adx.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
OFFLINE = REPO_ROOT / "docker-compose.offline.yml"
OVERLAYS = sorted((REPO_ROOT / "deploy" / "k8s" / "overlays").iterdir())
KUBERNETES_VERSION = "1.32.0"
# Variables of the containers that are not settings: the health check's process name.
NOT_SETTINGS = {"ADX_PROCESS"}
SETTINGS = {f"ADX_{name.upper()}" for name in Settings.model_fields}


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: {hint}")
    return found


@functools.cache
def compose_env() -> dict[str, str]:
    """The variables of a .env as `adx secrets` writes it."""
    secrets = subprocess.run(
        [sys.executable, "-m", "adx", "secrets"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in secrets.splitlines())


def docker_compose(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    binary = tool("docker-compose", "make system-deps installs Debian's docker-compose")
    args = [binary, "--project-directory", str(REPO_ROOT)]
    for file in files:
        args += ["-f", str(file)]
    env = {"PATH": "/usr/bin:/bin", **compose_env()}
    return subprocess.run([*args, "config"], capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, OFFLINE)], ids=["official", "offline"])
def test_compose_files_are_valid(tmp_path: Path, files: tuple[Path, ...]) -> None:
    result = docker_compose(tmp_path, *files)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) >= {p.k8s_name for p in processes()}


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    """The validation can fail: an unknown key in a service is an error."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text().replace("\n  redis:\n", "\n  redis:\n    restarts: always\n", 1)
    broken.write_text(text)
    result = docker_compose(tmp_path, broken)
    assert result.returncode != 0
    assert "restarts" in result.stderr


def render(overlay: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "kubectl (with kustomize) comes with the machine image")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(path: Path, documents: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate on ``documents`` (written to ``path``), unknown fields refused."""
    path.write_text(yaml.safe_dump_all(documents))
    binary = tool("kubernetes-validate", "it is a dev dependency (make install)")
    return subprocess.run(
        [binary, "--strict", "-k", KUBERNETES_VERSION, str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_overlay_renders_and_is_valid_kubernetes(tmp_path: Path, overlay: Path) -> None:
    documents = render(overlay)
    # Argo CD's hook annotations are plain annotations; every kind here has a schema.
    result = validate(tmp_path / f"{overlay.name}.yaml", documents)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        f"adx-{overlay.name}"
    }
    settings = next(d for d in documents if d["kind"] == "ConfigMap")
    assert settings["data"]["ADX_TEMPORAL_NAMESPACE"] == overlay.name


def test_an_unknown_field_is_refused_by_the_validation(tmp_path: Path) -> None:
    documents = render(OVERLAYS[0])
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    result = validate(tmp_path / "broken.yaml", documents)
    assert result.returncode != 0
    assert "imagePullPolice" in result.stdout + result.stderr


def test_the_generated_resources_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adx", "deploy", "manifests", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Parity -------------------------------------------------------------------------------------


def compose_services(tmp_path: Path) -> dict[str, Any]:
    result = docker_compose(tmp_path, COMPOSE)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def kubernetes_processes() -> dict[str, dict[str, Any]]:
    """Component name -> the container of its Deployment (production overlay)."""
    documents = render(REPO_ROOT / "deploy" / "k8s" / "overlays" / "production")
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]
        for d in documents
        if d["kind"] == "Deployment"
    }


def container_port(process: Process) -> int:
    return process.port if process.port is not None else WORKER_HEALTH_PORT


def test_every_process_of_the_launcher_runs_alike_in_compose_and_kubernetes(
    tmp_path: Path,
) -> None:
    launcher = processes()
    assert len(launcher) == 18  # 5 services x 2 modes, 5 BFFs, gateway, router, codec server
    compose = compose_services(tmp_path)
    kubernetes = kubernetes_processes()
    for process in launcher:
        service = compose[process.k8s_name]
        assert service["command"] == list(process.command), process.name
        assert service["environment"]["ADX_PROCESS"] == process.name
        container = kubernetes[process.k8s_name]
        assert container["args"] == list(process.command), process.name
        assert {"name": "ADX_PROCESS", "value": process.name} in container["env"]
        assert container["ports"][0]["containerPort"] == container_port(process)
        # The image's health check asks the same port the probes ask.
        settings = Settings(_env_file=None, worker_health_port=WORKER_HEALTH_PORT)
        assert health_port(settings, process.name) == container_port(process), process.name
    # Nothing in compose or Kubernetes that the launcher does not run (but the third parties
    # and the one-shot jobs).
    jobs = {"seed", "temporal-setup", "temporal-schema"}
    third_parties = {"postgres", "redis", "clamd", "temporal", "temporal-ui"}
    assert set(compose) == {p.k8s_name for p in launcher} | jobs | third_parties
    assert set(kubernetes) == {p.k8s_name for p in launcher} | {"clamd"}


def test_every_variable_compose_and_kubernetes_set_is_a_setting(tmp_path: Path) -> None:
    variables: set[str] = set()
    for service in compose_services(tmp_path).values():
        environment = service.get("environment") or {}
        variables |= {name for name in environment if name.startswith("ADX_")}
    for overlay in OVERLAYS:
        for document in render(overlay):
            if document["kind"] == "ConfigMap":
                variables |= set(document["data"])
    assert variables
    assert variables - NOT_SETTINGS <= SETTINGS, sorted(variables - NOT_SETTINGS - SETTINGS)


def test_the_services_reach_each_other_by_the_names_compose_and_kubernetes_give_them(
    tmp_path: Path,
) -> None:
    compose = compose_services(tmp_path)
    kubernetes = {d["metadata"]["name"] for d in render(OVERLAYS[0]) if d["kind"] == "Service"}
    hosts_in_compose = json.loads(compose["gateway"]["environment"]["ADX_HOSTS"])
    config_map = next(d for d in render(OVERLAYS[0]) if d["kind"] == "ConfigMap")
    assert json.loads(config_map["data"]["ADX_HOSTS"]) == hosts_in_compose
    for port_name, host in hosts_in_compose.items():
        assert host in compose, port_name
        assert host in kubernetes, port_name
        process = next(p for p in processes() if p.port == Settings(_env_file=None).port(port_name))
        assert process.k8s_name == host
