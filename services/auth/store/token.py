"""One-time tokens (email verification, password reset and invitation, session exchange):
single use, with their email queued in the outbox in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.auth import UserStatus
from services.auth.models import TokenPurpose, TokenRow
from services.auth.store.tables import email_outbox, tokens, users
from services.common.db import Store, fetch_all, fetch_first, rowcount
from services.common.email import OutgoingEmail


def _token(row: RowMapping) -> TokenRow:
    return TokenRow.model_validate(dict(row))


class TokensMixin(Store):
    async def issue_token(self, token: TokenRow, email: OutgoingEmail | None = None) -> TokenRow:
        """Stores the token (and queues its email in the same transaction) unless a token
        with this id exists: then the existing one stands and nothing is queued again."""
        async with self.db.transaction() as session:
            found = await fetch_first(session, select(tokens).where(tokens.c.id == token.id))
            if found is not None:
                return _token(found)
            await session.execute(insert(tokens).values(**token.model_dump(mode="python")))
            if email is not None:
                await self.db.insert_if_absent(
                    session,
                    email_outbox,
                    id=str(uuid.uuid4()),
                    idempotency_key=email.idempotency_key,
                    recipient=email.to,
                    subject=email.subject,
                    body=email.body,
                    created_at=token.created_at,
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
            found = await fetch_first(session, select(tokens).where(tokens.c.id == token_id))
        return _token(found) if found else None

    async def token_by_hash(self, purpose: TokenPurpose, hashed: str) -> TokenRow | None:
        query = select(tokens).where(tokens.c.token_hash == hashed, tokens.c.purpose == purpose)
        async with self.db.transaction() as session:
            found = await fetch_first(session, query)
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
            found = await fetch_first(session, select(tokens).where(tokens.c.id == token_id))
        return _token(found) if found else None

    async def delete_tokens_for_subject(self, subject_id: str) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(delete(tokens).where(tokens.c.subject_id == subject_id))
        return rowcount(result)

    async def consume_by_hash(
        self, purpose: TokenPurpose, hashed: str, now: datetime
    ) -> TokenRow | None:
        """The token of ``purpose`` with this hash, used up now; None if unknown, used or
        expired (single use): a session-exchange code, a re-authentication."""
        async with self.db.transaction() as session:
            found = await fetch_first(
                session,
                select(tokens).where(
                    tokens.c.token_hash == hashed, tokens.c.purpose == purpose.value
                ),
            )
            if found is None:
                return None
            token = _token(found)
            if not await self._consume(session, token.id, token.user_id, purpose, now):
                return None
        return token

    async def consume_reauthentication(
        self, hashed: str, user_id: str, operation_id: str, now: datetime
    ) -> bool:
        """Uses the user's re-authentication up for ``operation_id``: True once it is that
        operation's (a retried attempt of the same operation gets True again); False if it is
        unknown, another user's, expired, or used by another operation."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(tokens)
                .where(
                    tokens.c.token_hash == hashed,
                    tokens.c.purpose == TokenPurpose.REAUTHENTICATION.value,
                    tokens.c.user_id == user_id,
                    tokens.c.used_at.is_(None),
                    tokens.c.expires_at > now,
                )
                .values(used_at=now, workflow_id=operation_id)
            )
            if rowcount(result) == 1:
                return True
            found = await fetch_first(
                session,
                select(tokens.c.workflow_id).where(
                    tokens.c.token_hash == hashed,
                    tokens.c.purpose == TokenPurpose.REAUTHENTICATION.value,
                    tokens.c.user_id == user_id,
                    tokens.c.used_at.is_not(None),
                ),
            )
        return found is not None and found["workflow_id"] == operation_id

    async def tokens_for_user(self, user_id: str) -> list[TokenRow]:
        query = select(tokens).where(tokens.c.user_id == user_id).order_by(tokens.c.created_at)
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_token(row) for row in rows]
