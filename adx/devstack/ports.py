"""Port check before anything starts: a busy port is reported with the way to move it,
instead of a child failing later with a bind error buried in its log."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from adx.devstack.spec import PortBinding, ProcessSpec


@dataclass(frozen=True)
class PortConflict:
    process: str
    binding: PortBinding
    reason: str


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
                conflicts.append(PortConflict(spec.name, binding, reason))
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
