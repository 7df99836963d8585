"""The embedded Temporal dev server (``temporal server start-dev``) and what it must contain.

Checked with CLI 1.9.1: restarting with the same ``--db-filename``, ``--namespace`` and
``--search-attribute`` flags works and keeps the data; a namespace added later is created on the
next start; but a search attribute added later is registered only in namespaces created by that
start, not in existing ones. So after every start :func:`ensure_search_attributes` registers
whatever is missing through ``temporal operator search-attribute``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from adx.devstack.spec import PortBinding, ProcessSpec, TableRow, TcpCheck
from adx.logging import get_logger
from adx.settings import Settings

# Custom search attributes every namespace carries (all Keyword): workflows are listed and
# filtered by tenant, user and operation type.
SEARCH_ATTRIBUTES: Final[tuple[str, ...]] = ("TenantId", "UserId", "OperationType")
SEARCH_ATTRIBUTE_TYPE: Final = "Keyword"
# How `temporal operator search-attribute list -o json` spells that type.
_LISTED_TYPE: Final = "INDEXED_VALUE_TYPE_KEYWORD"

ALWAYS_CREATED_NAMESPACE: Final = "default"
_CLI_TIMEOUT_SECONDS: Final = 20.0

log = get_logger(__name__)


def database_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal" / "temporal.sqlite"


def all_namespaces(settings: Settings) -> list[str]:
    """The configured namespaces, "default" first, without duplicates."""
    names = [ALWAYS_CREATED_NAMESPACE, *settings.temporal_namespaces]
    return list(dict.fromkeys(names))


def temporal_argv(settings: Settings) -> list[str]:
    argv = [
        str(settings.temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        settings.host,
        "--port",
        str(settings.port("temporal")),
        "--ui-port",
        str(settings.port("temporal_ui")),
        "--db-filename",
        str(database_file(settings)),
    ]
    for namespace in all_namespaces(settings):
        if namespace != ALWAYS_CREATED_NAMESPACE:  # the CLI creates it on its own
            argv += ["--namespace", namespace]
    for name in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{name}={SEARCH_ATTRIBUTE_TYPE}"]
    argv += [
        "--ui-codec-endpoint",
        settings.url("codec_server"),
        "--log-level",
        "warn",
        # The UI would otherwise fetch a news feed from the internet on every page load.
        "--ui-disable-news-fetch",
    ]
    return argv


def temporal_spec(settings: Settings) -> ProcessSpec:
    grpc = PortBinding("temporal", settings.host, settings.port("temporal"))
    ui = PortBinding("temporal_ui", settings.host, settings.port("temporal_ui"))

    async def after_ready() -> None:
        await ensure_search_attributes(settings)

    return ProcessSpec(
        name="temporal",
        argv=tuple(temporal_argv(settings)),
        ports=(grpc, ui),
        # The CLI writes the namespaces into SQLite before the frontend listens, so an accepting
        # gRPC port means namespaces exist (the UI comes up a few ms later, in parallel).
        readiness=TcpCheck(grpc.host, grpc.port),
        table_rows=(
            TableRow("Temporal gRPC", settings.effective_temporal_address),
            TableRow("Temporal UI", settings.url("temporal_ui")),
            TableRow("Temporal namespaces", ", ".join(all_namespaces(settings))),
        ),
        ready_before_next=True,
        directories=(database_file(settings).parent,),
        after_ready=after_ready,
    )


async def _run_cli(settings: Settings, args: Sequence[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        str(settings.temporal_cli()),
        *args,
        "--address",
        settings.effective_temporal_address,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), _CLI_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        command = " ".join(args)
        raise RuntimeError(f"temporal {command}: no answer in {_CLI_TIMEOUT_SECONDS} s") from None
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip() or stdout.decode(errors="replace")
        raise RuntimeError(f"temporal {' '.join(args)} failed: {message}")
    return stdout.decode(errors="replace")


async def _custom_attributes(settings: Settings, namespace: str) -> dict[str, str]:
    listed = json.loads(
        await _run_cli(
            settings,
            ["operator", "search-attribute", "list", "--namespace", namespace, "-o", "json"],
        )
    )
    attributes: dict[str, str] = listed.get("customAttributes") or {}
    return attributes


async def ensure_search_attributes(settings: Settings) -> None:
    """Registers every missing :data:`SEARCH_ATTRIBUTES` in every configured namespace."""
    for namespace in all_namespaces(settings):
        existing = await _custom_attributes(settings, namespace)
        for name in SEARCH_ATTRIBUTES:
            if name in existing and existing[name] != _LISTED_TYPE:
                # A search attribute's type cannot be changed in place; only a fresh database helps.
                log.error(
                    "search attribute has the wrong type; `adx dev --reset` recreates the database",
                    namespace=namespace,
                    search_attribute=name,
                    found=existing[name],
                    expected=SEARCH_ATTRIBUTE_TYPE,
                )
        missing = [name for name in SEARCH_ATTRIBUTES if name not in existing]
        if not missing:
            continue
        # One call per attribute: with several --name flags, CLI 1.9.1 on the dev server's
        # SQLite reports success but registers only the first (checked).
        for name in missing:
            create = ["operator", "search-attribute", "create", "--namespace", namespace]
            await _run_cli(settings, [*create, "--name", name, "--type", SEARCH_ATTRIBUTE_TYPE])
        registered = await _custom_attributes(settings, namespace)
        still_missing = [name for name in missing if name not in registered]
        if still_missing:
            raise RuntimeError(
                f"search attributes {still_missing} missing in namespace {namespace}"
            )
        log.info("registered search attributes", namespace=namespace, added=missing)
