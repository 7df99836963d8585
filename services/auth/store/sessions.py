"""Sessions: in Redis when configured, in the database otherwise (one :class:`SessionStore`
protocol, two backends)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from sqlalchemy import delete, select, update

from adx.settings import Settings
from services.auth.models import SessionRecord
from services.auth.store.tables import sessions
from services.common.db import Database, fetch_all, fetch_first, now_utc, rowcount


class SessionStore(Protocol):
    """Where sessions live. Every write is idempotent or a compare-and-set."""

    async def create(self, record: SessionRecord) -> SessionRecord:
        """Stores the session unless one with its id exists; returns the stored one."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        """Every unexpired session of the user (revoked ones included), newest first."""
        ...

    async def revoke(self, session_id: str, now: datetime) -> bool:
        """Revokes a live session; False if it was already revoked or is gone."""
        ...

    async def restore(self, session_id: str) -> bool:
        """Undoes a revocation (a compensation); False if it was not revoked."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, now: datetime
    ) -> bool:
        """Replaces the refresh token hash if it is still ``expected_hash`` and the session is
        not revoked (compare-and-set: of two refreshes with one token, one wins)."""
        ...


class SqlSessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, record: SessionRecord) -> SessionRecord:
        values = record.model_dump(mode="python")
        async with self._db.transaction() as session:
            await self._db.insert_if_absent(session, sessions, **values)
        stored = await self.get(record.id)
        assert stored is not None
        return stored

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._db.transaction() as session:
            found = await fetch_first(session, select(sessions).where(sessions.c.id == session_id))
        return SessionRecord.model_validate(dict(found)) if found else None

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        now = now_utc()
        query = select(sessions).where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
        async with self._db.transaction() as session:
            rows = await fetch_all(session, query)
            records = [SessionRecord.model_validate(dict(row)) for row in rows]
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    async def revoke(self, session_id: str, now: datetime) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return rowcount(result) == 1

    async def restore(self, session_id: str) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.revoked_at.is_not(None))
                .values(revoked_at=None)
            )
        return rowcount(result) == 1

    async def delete(self, session_id: str) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(delete(sessions).where(sessions.c.id == session_id))
        return rowcount(result) == 1

    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, now: datetime
    ) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(sessions)
                .where(
                    sessions.c.id == session_id,
                    sessions.c.refresh_token_hash == expected_hash,
                    sessions.c.revoked_at.is_(None),
                )
                .values(refresh_token_hash=new_hash, refreshed_at=now)
            )
        return rowcount(result) == 1


# Redis: one hash per session (``auth:session:<id>``, expiring with the session) and one set of
# session ids per user (``auth:user-sessions:<user id>``) for listing and revoking them all.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
"""
_REVOKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'revoked_at') ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[1])
return 1
"""
_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'revoked_at') == '' then return 0 end
redis.call('HSET', KEYS[1], 'revoked_at', '')
return 1
"""
_ROTATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'revoked_at') ~= '' then return 0 end
if redis.call('HGET', KEYS[1], 'refresh_token_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'refresh_token_hash', ARGV[2], 'refreshed_at', ARGV[3])
return 1
"""

_OPTIONAL = ("revoked_at", "user_agent", "refreshed_at")


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "auth:") -> None:
        self._redis = client
        self._prefix = prefix
        self._create = client.register_script(_CREATE)
        self._revoke = client.register_script(_REVOKE)
        self._restore = client.register_script(_RESTORE)
        self._rotate = client.register_script(_ROTATE)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}user-sessions:{user_id}"

    async def create(self, record: SessionRecord) -> SessionRecord:
        ttl_ms = int((record.expires_at - now_utc()).total_seconds() * 1000)
        if ttl_ms > 0:
            fields: list[str] = []
            for name, value in _encode(record).items():
                fields += [name, value]
            await self._create(
                keys=[self._key(record.id), self._user_key(record.user_id)],
                args=[ttl_ms, record.id, *fields],
            )
        stored = await self.get(record.id)
        return stored if stored is not None else record

    async def get(self, session_id: str) -> SessionRecord | None:
        data = cast(dict[str, str], await self._redis.hgetall(self._key(session_id)))
        return _decode(data) if data else None

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        ids = sorted(cast(set[str], await self._redis.smembers(self._user_key(user_id))))
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for session_id in ids:
            pipe.hgetall(self._key(session_id))
        found = await pipe.execute()
        records, gone = [], []
        for session_id, data in zip(ids, found, strict=True):
            if data:
                records.append(_decode(data))
            else:
                gone.append(session_id)
        if gone:  # expired sessions leave their id behind in the set
            await self._redis.srem(self._user_key(user_id), *gone)
        return sorted(records, key=lambda record: record.created_at, reverse=True)

    async def revoke(self, session_id: str, now: datetime) -> bool:
        return bool(await self._revoke(keys=[self._key(session_id)], args=[now.isoformat()]))

    async def restore(self, session_id: str) -> bool:
        return bool(await self._restore(keys=[self._key(session_id)], args=[]))

    async def delete(self, session_id: str) -> bool:
        record = await self.get(session_id)
        if record is None:
            return False
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._key(session_id))
        pipe.srem(self._user_key(record.user_id), session_id)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, now: datetime
    ) -> bool:
        return bool(
            await self._rotate(
                keys=[self._key(session_id)], args=[expected_hash, new_hash, now.isoformat()]
            )
        )


def _encode(record: SessionRecord) -> dict[str, str]:
    data = record.model_dump(mode="json")
    return {name: "" if value is None else str(value) for name, value in data.items()}


def _decode(data: Mapping[str, str]) -> SessionRecord:
    values: dict[str, Any] = dict(data)
    for name in _OPTIONAL:
        if values.get(name) == "":
            values[name] = None
    return SessionRecord.model_validate(values)


def open_session_store(
    settings: Settings, db: Database
) -> tuple[SessionStore, aioredis.Redis | None]:
    """Redis when ``settings.redis_url`` is set, else the service's database."""
    if settings.redis_url:
        client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        return RedisSessionStore(client), client
    return SqlSessionStore(db), None
