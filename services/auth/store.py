"""The auth service's persistence: users, one-time tokens, MFA secrets and recovery codes,
tenant access grants and the email outbox in its database; sessions in Redis when configured,
in the database otherwise (one :class:`SessionStore` protocol, two backends).

Writes that a retried activity may repeat are insert-if-absent or conditional updates, so a
retry never duplicates a row or an effect.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from adx.settings import Settings
from contracts.auth import GrantStatus, UserStatus
from contracts.errors import ErrorKind
from services.auth.models import (
    GrantRow,
    MfaSecretRow,
    MfaSecretStatus,
    SessionRecord,
    TokenPurpose,
    TokenRow,
    UserRow,
)
from services.common.db import Database, rowcount
from services.common.email import OutgoingEmail, outbox_table
from services.common.errors import ServiceError

metadata = MetaData()

users = Table(
    "auth_users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False),
    # Lower-cased email: unique, so addresses differing only in case are one account.
    Column("email_lower", String(320), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("email_verified_at", DateTime(timezone=True), nullable=True),
    Column("mfa_enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("email_lower", name="uq_auth_users_email_lower"),
)

sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("refresh_token_hash", String(64), nullable=False),
    Column("user_agent", String(300), nullable=True),
    Column("refreshed_at", DateTime(timezone=True), nullable=True),
    Index("ix_auth_sessions_user_id", "user_id"),
)

tokens = Table(
    "auth_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("workflow_id", String(200), nullable=True),
    Column("subject_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("token_hash", name="uq_auth_tokens_token_hash"),
    Index("ix_auth_tokens_user_id", "user_id"),
)

mfa_secrets = Table(
    "auth_mfa_secrets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("secret_ciphertext", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("workflow_id", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    # The last TOTP time step accepted at login: a code is good once.
    Column("last_used_step", BigInteger, nullable=False),
    Index("ix_auth_mfa_secrets_user_id", "user_id"),
)

recovery_codes = Table(
    "auth_recovery_codes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("user_id", "code_hash", name="uq_auth_recovery_codes_user_code"),
)

tenant_grants = Table(
    "auth_tenant_grants",
    metadata,
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "tenant_id", name="pk_auth_tenant_grants"),
    Index("ix_auth_tenant_grants_tenant_id", "tenant_id"),
)

email_outbox = outbox_table(metadata, "auth")

# Links in sent emails are redacted in the outbox (the token in them is a live credential).
_LINK_TOKEN = re.compile(r"token=[A-Za-z0-9_\-]+")


INVITED_PASSWORD_HASH = "!invited"  # noqa: S105 (a marker that no password matches)


def _public_row(row: RowMapping, table: Table, *, exclude: set[str]) -> dict[str, Any]:
    """A row as JSON-ready values, without the excluded (secret) columns."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.name in exclude:
            continue
        value = row[column.name]
        values[column.name] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _user(row: RowMapping) -> UserRow:
    return UserRow.model_validate(dict(row))


def _token(row: RowMapping) -> TokenRow:
    return TokenRow.model_validate(dict(row))


def _grant(row: RowMapping) -> GrantRow:
    return GrantRow.model_validate(dict(row))


def _secret(row: RowMapping) -> MfaSecretRow:
    return MfaSecretRow.model_validate(dict(row))


class AuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox_table = email_outbox

    # Users -------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRow | None:
        async with self.db.transaction() as session:
            row = (await session.execute(select(users).where(users.c.id == user_id))).mappings()
            found = row.first()
        return _user(found) if found else None

    async def user_by_email(self, email: str) -> UserRow | None:
        query = select(users).where(users.c.email_lower == email.strip().lower())
        async with self.db.transaction() as session:
            found = (await session.execute(query)).mappings().first()
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
                inserted = await session.execute(
                    self.db.insert(users)
                    .on_conflict_do_nothing()
                    .values(
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
                )
                created = rowcount(inserted) == 1
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
        found = (await session.execute(query)).mappings().first()
        return _user(found) if found else None

    async def seed_user(self, user_id: str, email: str, password_hash: str, now: datetime) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                self.db.insert(users)
                .on_conflict_do_nothing()
                .values(
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
            )
        return rowcount(result) == 1

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
            status = (
                await session.execute(select(users.c.status).where(users.c.id == user_id))
            ).scalar_one_or_none()
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
            status = (
                await session.execute(select(users.c.status).where(users.c.id == user_id))
            ).scalar_one_or_none()
            if status != UserStatus.PENDING.value:
                return False
            for table in (recovery_codes, mfa_secrets, tokens, tenant_grants, sessions):
                await session.execute(delete(table).where(table.c.user_id == user_id))
            await session.execute(delete(users).where(users.c.id == user_id))
        return True

    async def create_invited_user(
        self, user_id: str, email: str, now: datetime
    ) -> tuple[UserRow, bool]:
        """Inserts the invited account unless the address is taken; returns the account with
        this address and whether this call inserted it."""
        email = email.strip()
        async with self.db.transaction() as session:
            inserted = await session.execute(
                self.db.insert(users)
                .on_conflict_do_nothing()
                .values(
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
            )
            found = await self._user_by_email(session, email)
        if found is None:  # the id exists with another address
            raise ServiceError(ErrorKind.CONFLICT, "the invitation conflicts with another account")
        return found, rowcount(inserted) == 1

    async def delete_invited_user(self, user_id: str, outbox_key: str | None = None) -> bool:
        """Removes a still-invited account with everything it owns (and the invitation email
        of ``outbox_key``); an account that was activated since is never touched."""
        async with self.db.transaction() as session:
            if outbox_key is not None:
                await session.execute(
                    delete(email_outbox).where(email_outbox.c.idempotency_key == outbox_key)
                )
            status = (
                await session.execute(select(users.c.status).where(users.c.id == user_id))
            ).scalar_one_or_none()
            if status != UserStatus.INVITED.value:
                return False
            for table in (recovery_codes, mfa_secrets, tokens, tenant_grants, sessions):
                await session.execute(delete(table).where(table.c.user_id == user_id))
            await session.execute(delete(users).where(users.c.id == user_id))
        return True

    async def export_user_data(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the user, secrets left out (password hash, token hashes, TOTP
        secrets, recovery code hashes, refresh token hashes). Sessions come from the
        session store (see the activity)."""
        records: dict[str, list[dict[str, Any]]] = {}
        async with self.db.transaction() as session:
            user = (
                (await session.execute(select(users).where(users.c.id == user_id)))
                .mappings()
                .first()
            )
            if user is None:
                return records
            records["auth_users"] = [_public_row(user, users, exclude={"password_hash"})]
            for table, exclude in (
                (tenant_grants, set()),
                (tokens, {"token_hash"}),
                (mfa_secrets, {"secret_ciphertext", "last_used_step"}),
                (recovery_codes, {"code_hash"}),
            ):
                rows = (
                    (await session.execute(select(table).where(table.c.user_id == user_id)))
                    .mappings()
                    .all()
                )
                records[table.name] = [_public_row(row, table, exclude=exclude) for row in rows]
            emails = (
                (
                    await session.execute(
                        select(email_outbox).where(email_outbox.c.recipient == user["email"])
                    )
                )
                .mappings()
                .all()
            )
            # Bodies may hold a live link: subject and dates only.
            records[email_outbox.name] = [
                _public_row(row, email_outbox, exclude={"body", "idempotency_key"})
                for row in emails
            ]
        return records

    async def erase_user_data(self, user_id: str) -> dict[str, int]:
        """Deletes every row about the user (idempotent: a second call deletes nothing)."""
        counts: dict[str, int] = {}
        async with self.db.transaction() as session:
            email = (
                await session.execute(select(users.c.email_lower).where(users.c.id == user_id))
            ).scalar_one_or_none()
            for table in (recovery_codes, mfa_secrets, tokens, tenant_grants, sessions):
                result = await session.execute(delete(table).where(table.c.user_id == user_id))
                counts[table.name] = rowcount(result)
            counts[email_outbox.name] = 0
            if email is not None:
                result = await session.execute(
                    delete(email_outbox).where(func.lower(email_outbox.c.recipient) == email)
                )
                counts[email_outbox.name] = rowcount(result)
            result = await session.execute(delete(users).where(users.c.id == user_id))
            counts[users.name] = rowcount(result)
        return counts

    async def set_account_status(self, user_id: str, status: UserStatus, now: datetime) -> bool:
        """active <-> deactivated; True if it changed. A pending account is not touched."""
        movable = [UserStatus.ACTIVE.value, UserStatus.DEACTIVATED.value]
        async with self.db.transaction() as session:
            current = (
                await session.execute(select(users.c.status).where(users.c.id == user_id))
            ).scalar_one_or_none()
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

    # One-time tokens ---------------------------------------------------------------------

    async def issue_token(self, token: TokenRow, email: OutgoingEmail | None = None) -> TokenRow:
        """Stores the token (and queues its email in the same transaction) unless a token
        with this id exists: then the existing one stands and nothing is queued again."""
        async with self.db.transaction() as session:
            found = (
                (await session.execute(select(tokens).where(tokens.c.id == token.id)))
                .mappings()
                .first()
            )
            if found is not None:
                return _token(found)
            await session.execute(insert(tokens).values(**token.model_dump(mode="python")))
            if email is not None:
                await session.execute(
                    self.db.insert(email_outbox)
                    .on_conflict_do_nothing()
                    .values(
                        id=str(uuid.uuid4()),
                        idempotency_key=email.idempotency_key,
                        recipient=email.to,
                        subject=email.subject,
                        body=email.body,
                        created_at=token.created_at,
                    )
                )
        return token

    async def replace_token_hash(self, token_id: str, new_hash: str) -> bool:
        """A fresh secret for an unused token (its plaintext was lost with a failed attempt)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.used_at.is_(None))
                .values(token_hash=new_hash)
            )
        return rowcount(result) == 1

    async def get_token(self, token_id: str) -> TokenRow | None:
        async with self.db.transaction() as session:
            found = (
                (await session.execute(select(tokens).where(tokens.c.id == token_id)))
                .mappings()
                .first()
            )
        return _token(found) if found else None

    async def token_by_hash(self, purpose: TokenPurpose, hashed: str) -> TokenRow | None:
        query = select(tokens).where(tokens.c.token_hash == hashed, tokens.c.purpose == purpose)
        async with self.db.transaction() as session:
            found = (await session.execute(query)).mappings().first()
        return _token(found) if found else None

    async def consume_token(
        self, token_id: str, user_id: str, purpose: TokenPurpose, now: datetime
    ) -> bool:
        """Marks an unused, unexpired token used; False if it was not (single use)."""
        async with self.db.transaction() as session:
            return await self._consume(session, token_id, user_id, purpose, now)

    async def _consume(
        self,
        session: AsyncSession,
        token_id: str,
        user_id: str,
        purpose: TokenPurpose,
        now: datetime,
    ) -> bool:
        result = await session.execute(
            update(tokens)
            .where(
                tokens.c.id == token_id,
                tokens.c.user_id == user_id,
                tokens.c.purpose == purpose.value,
                tokens.c.used_at.is_(None),
                tokens.c.expires_at > now,
            )
            .values(used_at=now)
        )
        return rowcount(result) == 1

    async def consume_reset_token(
        self, token_id: str, user_id: str, password_hash: str, now: datetime
    ) -> bool:
        """Uses the reset token up and sets the new password, together or not at all."""
        async with self.db.transaction() as session:
            if not await self._consume(
                session, token_id, user_id, TokenPurpose.PASSWORD_RESET, now
            ):
                return False
            await session.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=password_hash, updated_at=now)
            )
            # An invitation link (user onboarding) is a reset token of an invited account:
            # choosing the password proves the address and activates it.
            await session.execute(
                update(users)
                .where(users.c.id == user_id, users.c.status == UserStatus.INVITED.value)
                .values(status=UserStatus.ACTIVE.value, email_verified_at=now)
            )
        return True

    async def expire_token(self, token_id: str, now: datetime) -> TokenRow | None:
        """Ends an unused token's validity now; the token as it is afterwards."""
        async with self.db.transaction() as session:
            await session.execute(
                update(tokens)
                .where(
                    tokens.c.id == token_id, tokens.c.used_at.is_(None), tokens.c.expires_at > now
                )
                .values(expires_at=now)
            )
            found = (
                (await session.execute(select(tokens).where(tokens.c.id == token_id)))
                .mappings()
                .first()
            )
        return _token(found) if found else None

    async def delete_tokens_for_subject(self, subject_id: str) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(delete(tokens).where(tokens.c.subject_id == subject_id))
        return rowcount(result)

    async def consume_exchange_code(self, hashed: str, now: datetime) -> TokenRow | None:
        """The session-exchange token with this hash, used up now; None if unknown, used or
        expired (single use)."""
        async with self.db.transaction() as session:
            found = (
                (
                    await session.execute(
                        select(tokens).where(
                            tokens.c.token_hash == hashed,
                            tokens.c.purpose == TokenPurpose.SESSION_EXCHANGE.value,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if found is None:
                return None
            token = _token(found)
            if not await self._consume(
                session, token.id, token.user_id, TokenPurpose.SESSION_EXCHANGE, now
            ):
                return None
        return token

    async def tokens_for_user(self, user_id: str) -> list[TokenRow]:
        query = select(tokens).where(tokens.c.user_id == user_id).order_by(tokens.c.created_at)
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_token(row) for row in rows]

    async def redact_sent_email(self, idempotency_key: str) -> None:
        """Once sent, the outbox keeps the email without the live token in its link."""
        table = email_outbox
        async with self.db.transaction() as session:
            found = (
                (
                    await session.execute(
                        select(table.c.id, table.c.body).where(
                            table.c.idempotency_key == idempotency_key,
                            table.c.sent_at.is_not(None),
                        )
                    )
                )
                .mappings()
                .first()
            )
            if found is None:
                return
            redacted = _LINK_TOKEN.sub("token=[redacted]", found["body"])
            if redacted != found["body"]:
                await session.execute(
                    update(table).where(table.c.id == found["id"]).values(body=redacted)
                )

    # Tenant access grants ------------------------------------------------------------------

    async def upsert_grant(
        self,
        user_id: str,
        tenant_id: str,
        roles: Sequence[str],
        status: GrantStatus,
        now: datetime,
    ) -> GrantRow:
        roles = sorted(set(roles), key=list(roles).index)
        async with self.db.transaction() as session:
            exists = (
                await session.execute(select(users.c.id).where(users.c.id == user_id))
            ).scalar_one_or_none()
            if exists is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "user not found")
            await session.execute(
                self.db.insert(tenant_grants)
                .on_conflict_do_nothing()
                .values(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    roles=roles,
                    status=status.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.execute(
                update(tenant_grants)
                .where(tenant_grants.c.user_id == user_id, tenant_grants.c.tenant_id == tenant_id)
                .values(roles=roles, status=status.value, updated_at=now)
            )
        return GrantRow(user_id=user_id, tenant_id=tenant_id, roles=roles, status=status)

    async def seed_grant(
        self, user_id: str, tenant_id: str, roles: Sequence[str], now: datetime
    ) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(tenant_grants)
                .on_conflict_do_nothing()
                .values(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    roles=list(roles),
                    status=GrantStatus.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def delete_grant(self, user_id: str, tenant_id: str) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(tenant_grants).where(
                    tenant_grants.c.user_id == user_id, tenant_grants.c.tenant_id == tenant_id
                )
            )
        return rowcount(result) == 1

    async def get_grant(self, user_id: str, tenant_id: str) -> GrantRow | None:
        query = select(tenant_grants).where(
            tenant_grants.c.tenant_id == tenant_id, tenant_grants.c.user_id == user_id
        )
        async with self.db.transaction() as session:
            found = (await session.execute(query)).mappings().first()
        return _grant(found) if found else None

    async def active_grant(self, user_id: str, tenant_id: str) -> GrantRow | None:
        grant = await self.get_grant(user_id, tenant_id)
        return grant if grant is not None and grant.status is GrantStatus.ACTIVE else None

    async def grants_for_user(self, user_id: str) -> list[GrantRow]:
        """The user's grants, oldest first (the first active one is the default tenant)."""
        query = (
            select(tenant_grants)
            .where(tenant_grants.c.user_id == user_id)
            .order_by(tenant_grants.c.created_at, tenant_grants.c.tenant_id)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_grant(row) for row in rows]

    async def grants_in_tenant(self, tenant_id: str) -> list[GrantRow]:
        query = (
            select(tenant_grants)
            .where(tenant_grants.c.tenant_id == tenant_id)
            .order_by(tenant_grants.c.user_id)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_grant(row) for row in rows]

    # MFA ---------------------------------------------------------------------------------

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
            found = (
                (await session.execute(select(mfa_secrets).where(mfa_secrets.c.id == secret_id)))
                .mappings()
                .first()
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
            rows = (await session.execute(query)).mappings().all()
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
            found = (
                (
                    await session.execute(
                        select(mfa_secrets).where(
                            mfa_secrets.c.id == secret_id, mfa_secrets.c.user_id == user_id
                        )
                    )
                )
                .mappings()
                .first()
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


# Sessions ------------------------------------------------------------------------------------


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
        if self._db.is_sqlite:
            statement: Insert = sqlite_insert(sessions).values(**values).on_conflict_do_nothing()
        else:
            statement = postgres_insert(sessions).values(**values).on_conflict_do_nothing()
        async with self._db.transaction() as session:
            await session.execute(statement)
        stored = await self.get(record.id)
        assert stored is not None
        return stored

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._db.transaction() as session:
            found = (
                (await session.execute(select(sessions).where(sessions.c.id == session_id)))
                .mappings()
                .first()
            )
        return SessionRecord.model_validate(dict(found)) if found else None

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        now = _now()
        query = select(sessions).where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
        async with self._db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
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


def _now() -> datetime:
    return datetime.now(UTC)


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
        ttl_ms = int((record.expires_at - _now()).total_seconds() * 1000)
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
