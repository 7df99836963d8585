"""The ``adx`` command. Each subcommand lives in its own module (the Command protocol below),
imported only when that subcommand runs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Protocol


class Command(Protocol):
    """What a subcommand module provides."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# subcommand name -> (module implementing the Command protocol, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("adx.cli", "print the effective settings, secrets redacted"),
    "dev": ("adx.devstack.command", "run the whole stack on embedded defaults"),
    "secrets": (
        "adx.secrets_command",
        "print a new set of production secrets as .env lines (nothing is stored)",
    ),
    "service": (
        "services.command",
        "run a backend service in server mode (HTTP) or worker mode (Temporal)",
    ),
    "seed": (
        "services.seed_command",
        "put the demo tenants and users (alice@acme.test, bob@globex.test) in every service",
    ),
    "gateway": ("gateway.app", "run the API gateway"),
    "bff": ("graph.runtime", "run a BFF subgraph (auth, tenant, file, user, workflow)"),
    "schema": (
        "adx.schema_command",
        "export, compose and check the supergraph schema; run the supergraph router",
    ),
    "histories": (
        "adx.histories",
        "record the workflow histories the replay tests check (tests/histories)",
    ),
    "temporal-setup": (
        "adx.temporal_setup",
        "create the Temporal namespaces and search attributes ADX needs (external Temporal)",
    ),
    "deploy": (
        "adx.deploy",
        "Worker Versioning: promote a build to current, show each deployment's versions",
    ),
    "codec-server": (
        "workflow_client.codec_server",
        "serve the codec server that decrypts Temporal payloads for the Temporal UI and CLI",
    ),
}

HELP = COMMANDS["config"][1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # `adx config` takes no options


def run(args: argparse.Namespace) -> int:
    from adx.settings import get_settings

    del args
    print(json.dumps(get_settings().redacted(), indent=2, sort_keys=True))
    return 0


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adx", description="ADX Core command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module: Command = importlib.import_module(module_name)
            module.add_arguments(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected if selected in COMMANDS else None).parse_args(argv)
    module: Command = importlib.import_module(COMMANDS[args.command][0])
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
