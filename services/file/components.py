"""What the file service's routes and activities share in one process: settings, store,
storage providers, scanner and email outbox (built once in ``on_start``)."""

from __future__ import annotations

from dataclasses import dataclass

from adx.settings import Settings
from services.common.db import Database
from services.common.email import EmailOutbox
from services.common.service import ServiceRuntime
from services.file.activities import FileActivities
from services.file.config import FileSettings
from services.file.scanner import ClamdScanner, Scanner
from services.file.storage import StorageRegistry
from services.file.store import FileStore, email_outbox


@dataclass
class FileComponents:
    config: FileSettings
    settings: Settings
    store: FileStore
    storage: StorageRegistry
    scanner: Scanner | None
    outbox: EmailOutbox

    @classmethod
    def build(cls, db: Database, settings: Settings, config: FileSettings) -> FileComponents:
        clamd = config.clamd
        scanner = ClamdScanner(clamd, config.scan_timeout_seconds) if clamd is not None else None
        return cls(
            config=config,
            settings=settings,
            store=FileStore(db, config.default_quota_bytes),
            storage=StorageRegistry.from_settings(config),
            scanner=scanner,
            outbox=EmailOutbox(db, email_outbox, settings),
        )

    def activities(self) -> FileActivities:
        return FileActivities(
            self.store, self.storage, self.scanner, self.config, self.outbox, self.settings
        )


def components(runtime: ServiceRuntime) -> FileComponents:
    found = runtime.components.find(FileComponents)
    if found is None:
        raise RuntimeError("the file service's components are built in on_start")
    return found
