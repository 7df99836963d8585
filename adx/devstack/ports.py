"""Port check before anything starts: a busy port is reported with the way to move it,
instead of a child failing later with a bind error buried in its log."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import psutil

from adx.devstack.spec import PortBinding, ProcessSpec


@dataclass(frozen=True)
class PortConflict:
    process: str
    binding: PortBinding
    reason: str
    holder: str | None = None  # "pid 123: temporal server start-dev ...", when it can be seen


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's choice); the caller binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def distinct_free_ports(host: str = "127.0.0.1") -> Callable[[], int]:
    """Free ports that differ from each other (the OS may hand a just-closed one out twice)."""
    given: set[int] = set()

    def pick() -> int:
        while (port := free_port(host)) in given:
            pass
        given.add(port)
        return port

    return pick


def port_holder(port: int) -> str | None:
    """Which process listens on ``port``, as "pid N: command line"; None when none can be
    seen (another user's process, without the rights to look)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        address = connection.laddr
        if connection.status != psutil.CONN_LISTEN or not address or address.port != port:
            continue
        if connection.pid is None:
            return None
        try:
            command = " ".join(psutil.Process(connection.pid).cmdline())
        except psutil.Error:
            command = "?"
        if len(command) > 120:
            command = command[:117] + "..."
        return f"pid {connection.pid}: {command}"
    return None


def _bind_error(binding: PortBinding) -> str | None:
    try:
        # create_server sets SO_REUSEADDR like the servers themselves do, so a port that only
        # has connections in TIME_WAIT (a stack stopped a moment ago) does not count as busy.
        with socket.create_server((binding.host, binding.port)):
            return None
    except socket.gaierror as error:
        return f"host {binding.host!r} does not resolve: {error.strerror}"
    except OSError as error:
        # create_server puts the address into strerror; the plain reason reads better.
        return os.strerror(error.errno) if error.errno else str(error)
    except OverflowError:
        return "not a valid port number"


_IN_USE = os.strerror(errno.EADDRINUSE)


def find_port_conflicts(processes: Sequence[ProcessSpec]) -> list[PortConflict]:
    conflicts: list[PortConflict] = []
    claimed: dict[int, str] = {}
    for spec in processes:
        for binding in spec.ports:
            if binding.port in claimed:
                conflicts.append(
                    PortConflict(spec.name, binding, f"also configured for {claimed[binding.port]}")
                )
                continue
            claimed[binding.port] = f"{spec.name} ({binding.setting})"
            reason = _bind_error(binding)
            if reason is not None:
                holder = port_holder(binding.port) if reason == _IN_USE else None
                conflicts.append(PortConflict(spec.name, binding, reason, holder))
    return conflicts


def describe_conflicts(
    conflicts: Sequence[PortConflict], configured_ports: Mapping[str, int] | None = None
) -> str:
    """The message for a refused start; ``configured_ports`` (settings.ports) is kept in the
    suggested ADX_PORTS so following the advice does not undo the ports already chosen."""
    lines = ["adx dev: cannot start, these ports are not available:"]
    for conflict in conflicts:
        lines.append(
            f"  {conflict.binding.address:<22} {conflict.process} "
            f'(setting "{conflict.binding.setting}"): {conflict.reason}'
        )
        if conflict.holder is not None:
            lines.append(f"  {'':<22} held by {conflict.holder}")
    example = conflicts[0].binding
    # Any free port does; this one is only an example of the syntax.
    suggestion = example.port + 10000 if example.port + 10000 <= 65535 else example.port - 1000
    ports_json = json.dumps({**(configured_ports or {}), example.setting: suggestion})
    lines += [
        "Another adx dev, Temporal server or program is probably using them. Stop it, or move",
        "this stack:",
        f"  one port:    ADX_PORTS='{ports_json}' make dev",
        "  every port:  adx dev --port-offset 100   (make dev ARGS='--port-offset 100',",
        "               or ADX_PORT_OFFSET=100 make dev)",
        "Nothing was started.",
    ]
    return "\n".join(lines)
