"""Every process ``adx dev`` can run, in start order, built from settings.

Adding a process is one entry in :func:`build_registry`; an ``adx`` subcommand with an HTTP
health endpoint needs only :func:`adx_command_spec`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from adx.devstack.spec import HttpCheck, PortBinding, ProcessSpec, TableRow
from adx.devstack.temporal import all_namespaces, temporal_spec
from adx.settings import REPO_ROOT, Settings


@dataclass(frozen=True)
class Registry:
    processes: tuple[ProcessSpec, ...]
    # Processes the stack has but this configuration does not start, with the reason.
    not_started: Mapping[str, str] = field(default_factory=dict)
    # Start-up table rows that belong to no process (e.g. an external Temporal).
    extra_rows: tuple[TableRow, ...] = ()

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.processes]


class SelectionError(ValueError):
    """--only/--without named a process that does not exist or is not started."""


def child_environment(settings: Settings) -> dict[str, str]:
    """Settings the launcher may have changed (CLI flags) passed on, so every child computes
    the same ports, addresses and data dir as the launcher did."""
    return {
        "ADX_HOST": settings.host,
        "ADX_PORT_OFFSET": str(settings.port_offset),
        "ADX_PORTS": json.dumps(settings.ports),
        "ADX_DATA_DIR": str(settings.data_dir),
    }


def adx_command_spec(
    settings: Settings,
    name: str,
    command: Sequence[str],
    *,
    port_setting: str,
    label: str,
    health_path: str = "/healthz",
) -> ProcessSpec:
    """A process run as ``python -m adx <command>`` that serves HTTP on one settings port."""
    port = settings.port(port_setting)
    return ProcessSpec(
        name=name,
        argv=(sys.executable, "-m", "adx", *command),
        env=child_environment(settings),
        ports=(PortBinding(port_setting, settings.host, port),),
        readiness=HttpCheck(settings.url(port_setting, health_path)),
        table_rows=(TableRow(label, settings.url(port_setting)),),
        ready_timeout=30.0,
    )


def worker_spec(settings: Settings, service: str) -> ProcessSpec:
    """A service's worker mode: no port; it is up once it polls its task queue."""
    return ProcessSpec(
        name=f"{service}_worker",
        argv=(sys.executable, "-m", "adx", "service", service, "worker"),
        env=child_environment(settings),
        table_rows=(TableRow(f"{service.capitalize()} worker", f"{service}-task-queue"),),
    )


def router_spec(settings: Settings) -> ProcessSpec:
    """The supergraph router (GraphQL Hive Gateway) in front of the BFFs: ``adx schema router``
    composes the supergraph from the code, then becomes the gateway."""
    spec = adx_command_spec(
        settings,
        "router",
        ["schema", "router"],
        port_setting="router",
        label="Supergraph router (GraphQL)",
        health_path="/healthz",
    )
    # Composing first (every subgraph imported, Node started twice) takes longer than a BFF.
    return replace(
        spec,
        table_rows=(TableRow("Supergraph router (GraphQL)", settings.url("router", "/graphql")),),
        ready_timeout=60.0,
    )


def build_registry(settings: Settings) -> Registry:
    processes: list[ProcessSpec] = []
    not_started: dict[str, str] = {}
    extra_rows: list[TableRow] = []

    if settings.temporal_address is None:
        processes.append(temporal_spec(settings))
    else:
        not_started["temporal"] = f"ADX_TEMPORAL_ADDRESS is set ({settings.temporal_address})"
        extra_rows += [
            TableRow("Temporal gRPC", f"{settings.temporal_address} (external)"),
            TableRow("Temporal namespaces", ", ".join(all_namespaces(settings))),
        ]

    processes.append(
        adx_command_spec(
            settings,
            "codec_server",
            ["codec-server"],
            port_setting="codec_server",
            label="Codec server",
        )
    )
    from graph.runtime import BFFS
    from services.command import SERVICES

    for service in SERVICES:
        processes.append(
            adx_command_spec(
                settings,
                f"{service}_server",
                ["service", service, "server"],
                port_setting=service,
                label=f"{service.capitalize()} service",
            )
        )
        processes.append(worker_spec(settings, service))
    processes.append(
        adx_command_spec(
            settings, "gateway", ["gateway"], port_setting="gateway", label="API gateway"
        )
    )
    for bff in BFFS:
        processes.append(
            adx_command_spec(
                settings,
                f"bff_{bff}",
                ["bff", bff],
                port_setting=f"bff_{bff}",
                label=f"{bff.capitalize()} BFF (GraphQL)",
                health_path="/healthz",
            )
        )
    if (REPO_ROOT / "router" / "node_modules").is_dir():
        processes.append(router_spec(settings))
    else:
        not_started["router"] = "router/node_modules is missing: run `make router-deps`"

    if settings.temporal_metrics_bind is not None:
        processes, row = own_sdk_metrics_ports(processes, settings.temporal_metrics_bind)
        extra_rows.append(row)
    return Registry(tuple(processes), not_started, tuple(extra_rows))


# The processes that do not connect to Temporal (no SDK runtime, so no SDK metrics).
_WITHOUT_SDK = frozenset({"temporal", "router", "codec_server"})


def own_sdk_metrics_ports(
    processes: Sequence[ProcessSpec], bind: str
) -> tuple[list[ProcessSpec], TableRow]:
    """The Temporal SDK's metrics of each process that connects to Temporal on a port of its
    own, from ``bind``'s onwards: one address for all let only the first process start."""
    host, _, first = bind.rpartition(":")
    port = int(first)
    given: list[ProcessSpec] = []
    for spec in processes:
        if spec.name not in _WITHOUT_SDK:
            spec = replace(spec, env={**spec.env, "ADX_TEMPORAL_METRICS_BIND": f"{host}:{port}"})
            port += 1
        given.append(spec)
    row = TableRow("Temporal SDK metrics", f"http://{host}:{first}-{port - 1}/metrics")
    return given, row


def _split_names(values: Iterable[str]) -> list[str]:
    """["a,b", "c"] -> ["a", "b", "c"]: the flags may be repeated or comma-separated."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def select(
    registry: Registry, only: Iterable[str] = (), without: Iterable[str] = ()
) -> list[ProcessSpec]:
    """The processes to start, in registry order; unknown names are an error, not ignored."""
    only_names, without_names = _split_names(only), _split_names(without)
    for name in [*only_names, *without_names]:
        if name in registry.not_started:
            raise SelectionError(f"{name} is not started by adx dev: {registry.not_started[name]}")
        if name not in registry.names:
            raise SelectionError(
                f"unknown process {name!r}; the processes are: {', '.join(registry.names)}"
            )
    chosen = [
        spec
        for spec in registry.processes
        if (not only_names or spec.name in only_names) and spec.name not in without_names
    ]
    if not chosen:
        raise SelectionError("--only/--without leave no process to start")
    return chosen
