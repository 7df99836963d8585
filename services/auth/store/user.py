"""Users: the accounts (pending, invited, active, deactivated), keyed by id and by the
lower-cased email address."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.auth import UserStatus
from contracts.errors import ErrorKind
from services.auth.models import UserRow
from services.auth.store.tables import (
    email_outbox,
    mfa_secrets,
    recovery_codes,
    sessions,
    tenant_grants,
    tokens,
    users,
)
from services.common.db import Store, fetch_first, fetch_value, rowcount
from services.common.errors import ServiceError

INVITED_PASSWORD_HASH = "!invited"  # noqa: S105 (a marker that no password matches)


def _user(row: RowMapping) -> UserRow:
    return UserRow.model_validate(dict(row))


async def _delete_user_rows(session: AsyncSession, user_id: str) -> None:
    """The user with everything it owns."""
    for table in (recovery_codes, mfa_secrets, tokens, tenant_grants, sessions):
        await session.execute(delete(table).where(table.c.user_id == user_id))
    await session.execute(delete(users).where(users.c.id == user_id))


class UsersMixin(Store):
    async def get_user(self, user_id: str) -> UserRow | None:
        async with self.db.transaction() as session:
            found = await fetch_first(session, select(users).where(users.c.id == user_id))
        return _user(found) if found else None

    async def user_by_email(self, email: str) -> UserRow | None:
        query = select(users).where(users.c.email_lower == email.strip().lower())
        async with self.db.transaction() as session:
            found = await fetch_first(session, query)
        return _user(found) if found else None

    async def register_pending_user(
        self, email: str, password_hash: str, now: datetime
    ) -> tuple[UserRow, bool]:
        """The pending user for ``email`` (created, or the existing pending one with the new
        password); an active or deactivated account is a conflict. Returns (user, created)."""
        email = email.strip()
        async with self.db.transaction() as session:
            existing = await self._user_by_email(session, email)
            if existing is None:
                created = await self.db.insert_if_absent(
                    session,
                    users,
                    id=str(uuid.uuid4()),
                    email=email,
                    email_lower=email.lower(),
                    password_hash=password_hash,
                    status=UserStatus.PENDING.value,
                    email_verified_at=None,
                    mfa_enabled=False,
                    created_at=now,
                    updated_at=now,
                )
                existing = await self._user_by_email(session, email)
                assert existing is not None
                if created:
                    return existing, True
            if existing.status is not UserStatus.PENDING:
                raise ServiceError(
                    ErrorKind.CONFLICT, "an account with this email address already exists"
                )
            # Whoever proves the address last chose the password: a stranger who registered
            # the address first cannot keep the account.
            await session.execute(
                update(users)
                .where(users.c.id == existing.id)
                .values(password_hash=password_hash, updated_at=now)
            )
        return existing.model_copy(update={"password_hash": password_hash}), False

    async def _user_by_email(self, session: AsyncSession, email: str) -> UserRow | None:
        query = select(users).where(users.c.email_lower == email.lower())
        found = await fetch_first(session, query)
        return _user(found) if found else None

    async def seed_user(self, user_id: str, email: str, password_hash: str, now: datetime) -> bool:
        async with self.db.transaction() as session:
            created = await self.db.insert_if_absent(
                session,
                users,
                id=user_id,
                email=email,
                email_lower=email.lower(),
                password_hash=password_hash,
                status=UserStatus.ACTIVE.value,
                email_verified_at=now,
                mfa_enabled=False,
                created_at=now,
                updated_at=now,
            )
        return created

    async def activate_user(self, user_id: str, now: datetime) -> bool:
        """pending -> active; True if it changed (already active is fine: a retry)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(users)
                .where(users.c.id == user_id, users.c.status == UserStatus.PENDING.value)
                .values(status=UserStatus.ACTIVE.value, email_verified_at=now, updated_at=now)
            )
            if rowcount(result) == 1:
                return True
            status = await fetch_value(session, select(users.c.status).where(users.c.id == user_id))
        if status is None:
            raise ServiceError(ErrorKind.NOT_FOUND, "user not found")
        if status != UserStatus.ACTIVE.value:
            raise ServiceError(ErrorKind.CONFLICT, "the account cannot be activated")
        return False

    async def revert_activation(self, user_id: str, now: datetime) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(users)
                .where(users.c.id == user_id, users.c.status == UserStatus.ACTIVE.value)
                .values(status=UserStatus.PENDING.value, email_verified_at=None, updated_at=now)
            )
        return rowcount(result) == 1

    async def delete_pending_user(self, user_id: str) -> bool:
        """Removes a pending user with everything it owns; an active user is never touched."""
        async with self.db.transaction() as session:
            status = await fetch_value(session, select(users.c.status).where(users.c.id == user_id))
            if status != UserStatus.PENDING.value:
                return False
            await _delete_user_rows(session, user_id)
        return True

    async def create_invited_user(
        self, user_id: str, email: str, now: datetime
    ) -> tuple[UserRow, bool]:
        """Inserts the invited account unless the address is taken; returns the account with
        this address and whether this call inserted it."""
        email = email.strip()
        async with self.db.transaction() as session:
            inserted = await self.db.insert_if_absent(
                session,
                users,
                id=user_id,
                email=email,
                email_lower=email.lower(),
                # Not an argon2 hash: no password verifies until the invitation sets one.
                password_hash=INVITED_PASSWORD_HASH,
                status=UserStatus.INVITED.value,
                email_verified_at=None,
                mfa_enabled=False,
                created_at=now,
                updated_at=now,
            )
            found = await self._user_by_email(session, email)
        if found is None:  # the id exists with another address
            raise ServiceError(ErrorKind.CONFLICT, "the invitation conflicts with another account")
        return found, inserted

    async def delete_invited_user(self, user_id: str, outbox_key: str | None = None) -> bool:
        """Removes a still-invited account with everything it owns (and the invitation email
        of ``outbox_key``); an account that was activated since is never touched."""
        async with self.db.transaction() as session:
            if outbox_key is not None:
                await session.execute(
                    delete(email_outbox).where(email_outbox.c.idempotency_key == outbox_key)
                )
            status = await fetch_value(session, select(users.c.status).where(users.c.id == user_id))
            if status != UserStatus.INVITED.value:
                return False
            await _delete_user_rows(session, user_id)
        return True

    async def set_account_status(self, user_id: str, status: UserStatus, now: datetime) -> bool:
        """active <-> deactivated; True if it changed. A pending account is not touched."""
        movable = [UserStatus.ACTIVE.value, UserStatus.DEACTIVATED.value]
        async with self.db.transaction() as session:
            current = await fetch_value(
                session, select(users.c.status).where(users.c.id == user_id)
            )
            if current is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "user not found")
            if current not in movable or status.value not in movable:
                raise ServiceError(ErrorKind.VALIDATION, "the account has not been activated")
            result = await session.execute(
                update(users)
                .where(users.c.id == user_id, users.c.status != status.value)
                .values(status=status.value, updated_at=now)
            )
        return rowcount(result) == 1

    async def set_password(self, user_id: str, password_hash: str, now: datetime) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=password_hash, updated_at=now)
            )
