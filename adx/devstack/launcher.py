"""What ``adx dev`` does, in order: settings with the CLI overrides, selection, ``--list``,
port check, data-dir lock and ``--reset``, then the supervisor until a signal.

Every check runs before anything starts or is deleted, so a refused start changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from adx.devstack.console import Console
from adx.devstack.data_dir import DataDirError, DataDirLock, check_reset_is_safe, reset_data_dir
from adx.devstack.ports import describe_conflicts, find_port_conflicts
from adx.devstack.registry import Registry, SelectionError, build_registry, select
from adx.devstack.spec import ProcessSpec
from adx.devstack.supervisor import EXIT_FAILED, ManagedProcess, Supervisor
from adx.devstack.table import render_process_list, render_ready_table
from adx.logging import configure_logging, get_logger
from adx.settings import Settings, get_settings

EXIT_USAGE = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

log = get_logger(__name__)


def effective_settings(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    """The settings with --port-offset and --data-dir applied."""
    settings = base if base is not None else get_settings()
    overrides: dict[str, object] = {}
    if args.port_offset is not None:
        overrides["port_offset"] = args.port_offset
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.expanduser().resolve()
    return settings.model_copy(update=overrides) if overrides else settings


def _error(message: str) -> None:
    print(f"adx dev: {message}", file=sys.stderr, flush=True)


def launch(args: argparse.Namespace) -> int:
    settings = effective_settings(args)
    configure_logging(settings)
    # Every readiness probe would otherwise log an INFO line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return run_stack(args, settings)


def run_stack(args: argparse.Namespace, settings: Settings) -> int:
    """Everything after logging is set up (tests call this with their own settings)."""
    try:
        registry = build_registry(settings)
        selected = select(registry, args.only, args.without)
    except FileNotFoundError as error:  # no Temporal CLI
        _error(str(error))
        return EXIT_FAILED
    except SelectionError as error:
        _error(str(error))
        return EXIT_USAGE

    if args.list:
        print(render_process_list(selected, registry.not_started, settings.data_dir))
        return 0

    conflicts = find_port_conflicts(selected)
    if conflicts:
        print(describe_conflicts(conflicts, settings.ports), file=sys.stderr, flush=True)
        return EXIT_FAILED

    lock = DataDirLock(settings.data_dir)
    try:
        if args.reset:
            check_reset_is_safe(settings.data_dir)
        lock.acquire()
        if args.reset:
            removed = reset_data_dir(settings.data_dir)
            log.info("data dir reset", data_dir=str(settings.data_dir), removed=len(removed))
    except DataDirError as error:
        _error(str(error))
        return EXIT_FAILED
    try:
        return asyncio.run(supervise(selected, registry, settings))
    finally:
        lock.release()


async def supervise(selected: Sequence[ProcessSpec], registry: Registry, settings: Settings) -> int:
    console = Console(name_width=max(len(spec.name) for spec in selected))
    supervisor = Supervisor(selected, console)

    def on_up(processes: Sequence[ManagedProcess]) -> None:
        states = [(managed.spec, managed.ready.is_set()) for managed in processes]
        console.block(render_ready_table(states, registry.extra_rows, settings.data_dir))

    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, supervisor.request_stop, signum)
    try:
        return await supervisor.run(on_up)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
