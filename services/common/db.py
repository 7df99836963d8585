"""Each service's database: a SQLite file per service by default, PostgreSQL when configured.

Server mode and worker mode of a service share the database, so SQLite runs in WAL mode with a
busy timeout (two processes write to the same file).
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Executable, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, RowMapping
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from adx.settings import Settings


def database_url(settings: Settings, service: str) -> str:
    if settings.database_url:
        return settings.database_url
    path = settings.data_dir / "services" / f"{service}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def rowcount(result: Any) -> int:
    """Rows an INSERT/UPDATE/DELETE touched."""
    return int(cast(CursorResult[Any], result).rowcount)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str, service: str) -> None:
        self.url = url
        self.service = service
        self.is_sqlite = url.startswith("sqlite")
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> Database:
        return cls(database_url(settings, service), service)

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """INSERT with ON CONFLICT support (both dialects spell it the same)."""
        return sqlite.insert(table) if self.is_sqlite else postgresql.insert(table)

    async def insert_if_absent(
        self, session: AsyncSession, table: Table, keys: Sequence[str], **values: Any
    ) -> bool:
        """Inserts the row unless one with the same key exists; True if it was inserted.
        Idempotent writes (a retried activity) are built on it."""
        statement = self.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
        return rowcount(await session.execute(statement)) == 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits at the end of the block, or rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def first(self, statement: Executable) -> RowMapping | None:
        """The first row a read on its own gives (in a transaction of its own)."""
        async with self.transaction() as session:
            return (await session.execute(statement)).mappings().first()

    async def all_rows(self, statement: Executable) -> Sequence[RowMapping]:
        """Every row a read on its own gives (in a transaction of its own)."""
        async with self.transaction() as session:
            return (await session.execute(statement)).mappings().all()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self, script_location: Path) -> None:
        """Upgrades this service's tables to the newest Alembic revision.

        Server and worker start together: a lock makes the second wait for the first.
        """
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.attributes["version_table"] = f"alembic_version_{self.service}"

        def upgrade(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        if self.is_sqlite:
            lock_path = Path(self.engine.url.database or "db").with_suffix(".migrate.lock")
            with lock_path.open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                async with self.engine.begin() as conn:
                    await conn.run_sync(upgrade)
        else:
            async with self.engine.begin() as conn:
                # One advisory lock per service, held for the transaction.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                    {"name": f"adx-migrate-{self.service}"},
                )
                await conn.run_sync(upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()
