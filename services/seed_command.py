"""``adx seed``: the demo tenants and users in every service's database, then exit.

What ``adx dev`` does on every start, as a one-shot job for deployments that want the demo
(docker-compose.yml's ``seed``): explicit, so it runs whatever the environment. It creates what
is missing and changes nothing else, so running it twice is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from adx.logging import configure_logging, get_logger
from adx.settings import Settings, get_settings
from services.command import SERVICES, load
from services.common.service import open_runtime

HELP = "put the demo tenants and users (alice@acme.test, bob@globex.test) in every service"

log = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="SERVICE", help=f"only these ({', '.join(SERVICES)})"
    )


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - set(SERVICES))
    if unknown:
        raise SystemExit(f"adx seed: unknown service {', '.join(unknown)}")
    settings = get_settings()
    configure_logging(settings)
    asyncio.run(seed_services(args.names or list(SERVICES), settings))
    return 0


async def seed_services(names: Sequence[str], settings: Settings) -> None:
    if settings.is_production:
        log.warning("seed.production", detail="demo users with a known password are created")
    # Opened without seeding, then seeded here: once, whatever the environment says.
    quiet = settings.model_copy(update={"dev_seed": False})
    for name in names:
        definition = load(name)
        if definition.seed is None:
            continue
        runtime = await open_runtime(definition, quiet)
        try:
            await definition.seed(runtime)
        finally:
            await runtime.db.dispose()
        log.info("seed.done", service=name)
