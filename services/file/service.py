"""The file service: ``adx service file server|worker`` (port setting "file", 8083;
task queue ``file-task-queue``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from starlette.routing import BaseRoute

from contracts.file import FileStatus, Permission
from contracts.names import TaskQueue
from services.common.dev_seed import TENANTS, seed_user_id
from services.common.service import ServiceDefinition, ServiceRuntime
from services.file.api import FileApi
from services.file.components import FileComponents, components
from services.file.config import FileSettings
from services.file.keys import file_key
from services.file.models import NewFile
from services.file.scanner import ScannerUnavailable
from services.file.store import QuotaExceeded
from services.file.workflows import WORKFLOWS

log = structlog.stdlib.get_logger(__name__)

_SEED_NAMESPACE = uuid.UUID("c4a1d1b6-51a8-4f7e-a0f4-0d3a2b9e8c17")
WELCOME_NAME = "Welcome to ADX Core.txt"
WELCOME_TEXT = (
    "Welcome to ADX Core!\n\n"
    "This file was created by the development seed. Upload your own files, share them with\n"
    "your team, and watch each upload's progress live: scanning, storing and processing.\n"
)


def seed_file_id(tenant_id: str) -> str:
    return str(uuid.uuid5(_SEED_NAMESPACE, f"welcome|{tenant_id}"))


async def check_scanner(parts: FileComponents) -> None:
    """Production refuses to run without a virus scanner; development says it loudly."""
    if parts.scanner is None:
        if parts.settings.is_production:
            raise RuntimeError(
                "the file service needs a virus scanner in production: configure clamd's "
                "socket or address (ADX_FILE_CLAMD_SOCKET, ADX_FILE_CLAMD_ADDRESS)"
            )
        log.warning(
            "file.scanner_disabled",
            detail="no virus scanner configured: uploads are NOT scanned "
            "(development only; set clamd's socket or address to enable ClamAV)",
        )
        return
    try:
        await parts.scanner.ping()
    except ScannerUnavailable as error:
        # The scan activity retries until clamd answers; say so now rather than later.
        log.warning("file.scanner_unreachable", reason=error.message)
    else:
        log.info("file.scanner_ready", engine=parts.scanner.engine)


async def seed(parts: FileComponents) -> None:
    """Each seed tenant gets its quota row and a welcome file owned by its owner.
    Idempotent, and safe when server and worker seed at the same moment."""
    provider = parts.storage.get(parts.config.default_provider)
    data = WELCOME_TEXT.encode()
    for tenant in TENANTS:
        await parts.store.ensure_quota(tenant.id)
        file_id = seed_file_id(tenant.id)
        if await parts.store.find_file(file_id) is not None:
            continue
        owner = seed_user_id(tenant.owner_email)
        key = file_key(tenant.id, file_id)
        if not await provider.exists(key):
            async with provider.open_write(key) as writer:
                await writer.write(data)
            sha256, size = writer.sha256, writer.size
        else:
            sha256, size = await provider.checksum(key), len(data)
        try:
            await parts.store.create_file(
                NewFile(
                    id=file_id,
                    tenant_id=tenant.id,
                    owner_id=owner,
                    name=WELCOME_NAME,
                    declared_content_type="text/plain",
                    content_type="text/plain",
                    size_bytes=size,
                    sha256=sha256,
                    provider=provider.name,
                    storage_key=key,
                    status=FileStatus.READY,
                    metadata={"charset": "utf-8", "seeded": True},
                )
            )
            await parts.store.set_permission(
                tenant.id, file_id, owner, Permission.OWNER, granted_by=owner
            )
        except QuotaExceeded:
            log.info("file.seed_skipped", tenant_id=tenant.id, reason="quota")
        except IntegrityError:
            # The other mode of this service seeded it at the same moment.
            pass
    log.info("file.seeded", tenants=[tenant.id for tenant in TENANTS])


def file_service(config: FileSettings | None = None) -> ServiceDefinition:
    """The service definition; ``config`` None reads FileSettings from the process settings."""

    async def on_start(runtime: ServiceRuntime) -> None:
        parts = FileComponents.build(
            runtime.db, runtime.settings, config or FileSettings.from_settings(runtime.settings)
        )
        runtime.components.provide(parts)
        await check_scanner(parts)

    async def seed_demo(runtime: ServiceRuntime) -> None:
        await seed(components(runtime))

    def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
        return FileApi(runtime, components(runtime)).routes()

    def activities(runtime: ServiceRuntime) -> Sequence[Callable[..., Any]]:
        return components(runtime).activities().all()

    return ServiceDefinition(
        name="file",
        task_queue=TaskQueue.FILE,
        migrations=Path(__file__).parent / "migrations",
        routes=routes,
        workflows=WORKFLOWS,
        activities=activities,
        on_start=on_start,
        seed=seed_demo,
    )


SERVICE = file_service()
