"""``adx service NAME server|worker``: the dual-mode entry point of every service."""

from __future__ import annotations

import argparse
import asyncio
import importlib

from adx.logging import configure_logging
from adx.settings import get_settings
from services.common.service import ServiceDefinition, serve, work

HELP = "run a backend service in server mode (HTTP) or worker mode (Temporal)"

# name -> module whose SERVICE is the ServiceDefinition
SERVICES = {
    "auth": "services.auth.service",
    "user": "services.user.service",
    "file": "services.file.service",
    "workflow": "services.workflow.service",
    "tenant": "services.tenant.service",
}


def load(name: str) -> ServiceDefinition:
    definition: ServiceDefinition = importlib.import_module(SERVICES[name]).SERVICE
    return definition


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(SERVICES), help="which service")
    parser.add_argument("mode", choices=["server", "worker"], help="HTTP server or Temporal worker")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings)
    definition = load(args.name)
    main = serve if args.mode == "server" else work
    asyncio.run(main(definition, settings))
    return 0
