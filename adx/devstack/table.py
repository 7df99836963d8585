"""Plain-text reports: the table printed once the stack is up, and the ``--list`` output."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from adx.devstack.spec import ProcessSpec, TableRow

READY_TITLE = "adx dev: the stack is up"
RULE = "=" * 72


def render_ready_table(
    processes: Sequence[tuple[ProcessSpec, bool]],
    extra_rows: Sequence[TableRow],
    data_dir: Path,
) -> str:
    """``processes`` pairs each started spec with whether it is ready now."""
    rows: list[tuple[str, str, str]] = []
    for spec, ready in processes:
        note = "" if ready else f"NOT READY: {spec.name} is still starting or crashing, see its log"
        rows += [(row.label, row.value, note) for row in spec.table_rows]
    rows += [(row.label, row.value, "") for row in extra_rows]
    rows.append(("Data dir", str(data_dir), ""))

    not_ready = [spec.name for spec, ready in processes if not ready]
    title = READY_TITLE
    if not_ready:
        title += f", not ready yet: {', '.join(not_ready)}"
    label_width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [RULE, title]
    for label, value, note in rows:
        lines.append(f"  {label:<{label_width}}  {value:<{value_width}}  {note}".rstrip())
    lines += ["Ctrl-C stops everything.", RULE]
    return "\n".join(lines)


def render_process_list(
    processes: Sequence[ProcessSpec], not_started: Mapping[str, str], data_dir: Path
) -> str:
    name_width = max(len(spec.name) for spec in processes)
    lines: list[str] = []
    for spec in processes:
        ports = ", ".join(f"{b.address} ({b.setting})" for b in spec.ports) or "no ports"
        ready = spec.readiness.describe() if spec.readiness else "none"
        lines.append(f"{spec.name:<{name_width}}  {ports}  ready: {ready}")
        lines.append(f"{'':<{name_width}}  $ {shlex.join(spec.argv)}")
    for name, reason in not_started.items():
        lines.append(f"{name:<{name_width}}  not started: {reason}")
    lines.append(f"data dir: {data_dir}")
    return "\n".join(lines)
