"""MFA: TOTP secrets (pending until confirmed, one active per user) and recovery codes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from contracts.errors import ErrorKind
from services.auth.models import MfaSecretRow, MfaSecretStatus
from services.auth.store.tables import mfa_secrets, recovery_codes, users
from services.common.db import Store, fetch_all, fetch_first, rowcount
from services.common.errors import ServiceError


def _secret(row: RowMapping) -> MfaSecretRow:
    return MfaSecretRow.model_validate(dict(row))


class MfaMixin(Store):
    async def add_mfa_secret(self, secret: MfaSecretRow) -> None:
        async with self.db.transaction() as session:
            await session.execute(insert(mfa_secrets).values(**secret.model_dump(mode="python")))

    async def attach_mfa_workflow(self, secret_id: str, workflow_id: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(mfa_secrets)
                .where(mfa_secrets.c.id == secret_id)
                .values(workflow_id=workflow_id)
            )

    async def get_mfa_secret(self, secret_id: str) -> MfaSecretRow | None:
        async with self.db.transaction() as session:
            found = await fetch_first(
                session, select(mfa_secrets).where(mfa_secrets.c.id == secret_id)
            )
        return _secret(found) if found else None

    async def mfa_secrets_for_user(
        self, user_id: str, status: MfaSecretStatus | None = None
    ) -> list[MfaSecretRow]:
        """Newest first."""
        query = select(mfa_secrets).where(mfa_secrets.c.user_id == user_id)
        if status is not None:
            query = query.where(mfa_secrets.c.status == status.value)
        query = query.order_by(mfa_secrets.c.created_at.desc())
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_secret(row) for row in rows]

    async def discard_mfa_secret(self, secret_id: str) -> bool:
        """A pending secret is dropped (an active one stays: it is in use)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(mfa_secrets)
                .where(
                    mfa_secrets.c.id == secret_id,
                    mfa_secrets.c.status == MfaSecretStatus.PENDING.value,
                )
                .values(status=MfaSecretStatus.DISCARDED.value)
            )
        return rowcount(result) == 1

    async def enable_mfa(
        self, user_id: str, secret_id: str, code_hashes: Sequence[str], now: datetime
    ) -> bool:
        """Makes the pending secret the user's active one, replaces the recovery codes and
        turns MFA on, in one transaction. False if it was already done (a retry)."""
        async with self.db.transaction() as session:
            found = await fetch_first(
                session,
                select(mfa_secrets).where(
                    mfa_secrets.c.id == secret_id, mfa_secrets.c.user_id == user_id
                ),
            )
            if found is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "MFA setup not found")
            secret = _secret(found)
            if secret.status is MfaSecretStatus.ACTIVE:
                return False
            if secret.status is MfaSecretStatus.DISCARDED:
                raise ServiceError(ErrorKind.VALIDATION, "the MFA setup has expired")
            await session.execute(
                update(mfa_secrets)
                .where(
                    mfa_secrets.c.user_id == user_id,
                    mfa_secrets.c.status == MfaSecretStatus.ACTIVE.value,
                )
                .values(status=MfaSecretStatus.DISCARDED.value)
            )
            await session.execute(
                update(mfa_secrets)
                .where(mfa_secrets.c.id == secret_id)
                .values(status=MfaSecretStatus.ACTIVE.value, confirmed_at=now)
            )
            await session.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            for code_hash in code_hashes:
                await session.execute(
                    insert(recovery_codes).values(
                        id=str(uuid.uuid4()),
                        user_id=user_id,
                        code_hash=code_hash,
                        created_at=now,
                        used_at=None,
                    )
                )
            await session.execute(
                update(users).where(users.c.id == user_id).values(mfa_enabled=True, updated_at=now)
            )
        return True

    async def use_totp_step(self, secret_id: str, step: int) -> bool:
        """Accepts a TOTP time step once: a replayed code (same or older step) is refused."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(mfa_secrets)
                .where(mfa_secrets.c.id == secret_id, mfa_secrets.c.last_used_step < step)
                .values(last_used_step=step)
            )
        return rowcount(result) == 1

    async def use_recovery_code(self, user_id: str, code_hash: str, now: datetime) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(recovery_codes)
                .where(
                    recovery_codes.c.user_id == user_id,
                    recovery_codes.c.code_hash == code_hash,
                    recovery_codes.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
        return rowcount(result) == 1

    async def unused_recovery_codes(self, user_id: str) -> int:
        query = select(func.count()).where(
            and_(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
        )
        async with self.db.transaction() as session:
            return int((await session.execute(query)).scalar_one())
