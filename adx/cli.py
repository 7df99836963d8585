"""The ``adx`` command. Each subcommand lives in its own module and is imported only when run,
so ``adx config`` does not pay for importing the whole stack."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Protocol


class Command(Protocol):
    """What a subcommand module provides."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# subcommand name -> module that implements it (the Command protocol above)
COMMANDS: dict[str, str] = {
    "dev": "adx.devstack.command",
    "codec-server": "workflow_client.codec_server",
}


def _config(_args: argparse.Namespace) -> int:
    from adx.settings import get_settings

    print(json.dumps(get_settings().redacted(), indent=2, sort_keys=True))
    return 0


def build_parser() -> tuple[
    argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]
]:
    parser = argparse.ArgumentParser(prog="adx", description="ADX Core command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}

    config = sub.add_parser("config", help="print the effective settings, secrets redacted")
    handlers["config"] = _config
    del config

    for name, module_name in COMMANDS.items():
        module: Command = importlib.import_module(module_name)  # type: ignore[assignment]
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        handlers[name] = module.run
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
