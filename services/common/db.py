"""Each service's database: a SQLite file per service by default, PostgreSQL when configured.

Server mode and worker mode of a service share the database, so SQLite runs in WAL mode with a
busy timeout (two processes write to the same file).
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
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
    """The service's own URL (``database_urls``), else the shared one, else its SQLite file."""
    if service in settings.database_urls:
        return settings.database_urls[service]
    if settings.database_url:
        return settings.database_url
    path = settings.data_dir / "services" / f"{service}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def rowcount(result: Any) -> int:
    """Rows an INSERT/UPDATE/DELETE touched."""
    return int(cast(CursorResult[Any], result).rowcount)


# Row helpers the stores share ----------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def json_row(row: Mapping[Any, Any], *, exclude: Collection[str] = ()) -> dict[str, Any]:
    """A row as JSON-ready values (datetimes in ISO format), without the ``exclude`` columns
    (secrets a data export leaves out)."""
    return {
        str(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in row.items()
        if name not in exclude
    }


async def fetch_first(session: AsyncSession, statement: Executable) -> RowMapping | None:
    """The first row ``statement`` gives in ``session``, or None."""
    return (await session.execute(statement)).mappings().first()


async def fetch_one(session: AsyncSession, statement: Executable) -> RowMapping:
    """The one row ``statement`` gives in ``session`` (raises unless exactly one)."""
    return (await session.execute(statement)).mappings().one()


async def fetch_all(session: AsyncSession, statement: Executable) -> Sequence[RowMapping]:
    """Every row ``statement`` gives in ``session``."""
    return (await session.execute(statement)).mappings().all()


async def fetch_value(session: AsyncSession, statement: Executable) -> Any:
    """The single value ``statement`` selects in ``session``, or None if no row matches."""
    return (await session.execute(statement)).scalar_one_or_none()


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
        self, session: AsyncSession, table: Table, keys: Sequence[str] | None = None, **values: Any
    ) -> bool:
        """Inserts the row unless one with the same key exists (without ``keys``: unless it
        conflicts with any unique constraint); True if it was inserted. Idempotent writes (a
        retried activity) are built on it."""
        statement = self.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
        return rowcount(await session.execute(statement)) == 1

    def upsert(
        self,
        table: Table,
        keys: Mapping[str, Any],
        values: Mapping[str, Any],
        **insert_only: Any,
    ) -> postgresql.Insert | sqlite.Insert:
        """INSERT of ``keys``, ``values`` and ``insert_only``; if a row with these keys exists,
        it gets ``values`` instead (the ``insert_only`` columns keep what they hold)."""
        return (
            self.insert(table)
            .values(**keys, **insert_only, **values)
            .on_conflict_do_update(index_elements=list(keys), set_=dict(values))
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits at the end of the block, or rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def first(self, statement: Executable) -> RowMapping | None:
        """The first row a read on its own gives (in a transaction of its own)."""
        async with self.transaction() as session:
            return await fetch_first(session, statement)

    async def all_rows(self, statement: Executable) -> Sequence[RowMapping]:
        """Every row a read on its own gives (in a transaction of its own)."""
        async with self.transaction() as session:
            return await fetch_all(session, statement)

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


class Store:
    """What a service's store and each of its per-aggregate parts (mixins) hold."""

    def __init__(self, db: Database) -> None:
        self.db = db
