"""``adx dev``: the whole development stack with one command (``make dev``)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the development stack (Temporal dev server, codec server, ...) until Ctrl-C"

_EPILOG = """\
Processes start in order (Temporal first), each one's output is prefixed with its name, a
process that dies is reported and restarted, and Ctrl-C stops them all. Data lives in the data
dir (default .adx/ in the repository) and survives restarts.

Ports come from settings: move one with ADX_PORTS='{"temporal": 17233}', all of them with
--port-offset N (or ADX_PORT_OFFSET). With ADX_TEMPORAL_ADDRESS set, no Temporal is started.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="start only these processes (see --list for the names)",
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="start every process except these",
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        metavar="N",
        help="add N to every default port (overrides ADX_PORT_OFFSET), to run a second stack",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="where the processes keep their data (overrides ADX_DATA_DIR; default .adx/)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="delete everything in the data dir before starting (no confirmation asked)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the processes, their ports and commands, and exit",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here so `adx --help` and other subcommands do not load the launcher.
    from adx.devstack.launcher import launch

    return launch(args)
