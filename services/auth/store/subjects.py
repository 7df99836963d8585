"""Data-subject requests: every row about a user in this service, exported (secrets left out)
or erased."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from services.auth.store.tables import (
    email_outbox,
    mfa_secrets,
    recovery_codes,
    sessions,
    tenant_grants,
    tokens,
    users,
)
from services.common.db import Store, fetch_all, fetch_first, fetch_value, json_row, rowcount


class SubjectsMixin(Store):
    async def export_user_data(
        self, user_id: str, tenant_id: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Every row about the user, secrets left out (password hash, token hashes, TOTP
        secrets, recovery code hashes, refresh token hashes); with ``tenant_id`` (its
        admin's request) the account and its grant in that tenant only. Sessions come
        from the session store (see the activity)."""
        records: dict[str, list[dict[str, Any]]] = {}
        async with self.db.transaction() as session:
            user = await fetch_first(session, select(users).where(users.c.id == user_id))
            if user is None:
                return records
            records["auth_users"] = [json_row(user, exclude={"password_hash"})]
            if tenant_id is not None:
                grants = await fetch_all(
                    session,
                    select(tenant_grants).where(
                        tenant_grants.c.user_id == user_id, tenant_grants.c.tenant_id == tenant_id
                    ),
                )
                records[tenant_grants.name] = [json_row(row) for row in grants]
                return records
            for table, exclude in (
                (tenant_grants, set()),
                (tokens, {"token_hash"}),
                (mfa_secrets, {"secret_ciphertext", "last_used_step"}),
                (recovery_codes, {"code_hash"}),
            ):
                rows = await fetch_all(session, select(table).where(table.c.user_id == user_id))
                records[table.name] = [json_row(row, exclude=exclude) for row in rows]
            emails = await fetch_all(
                session, select(email_outbox).where(email_outbox.c.recipient == user["email"])
            )
            # Bodies may hold a live link: subject and dates only.
            records[email_outbox.name] = [
                json_row(row, exclude={"body", "idempotency_key"}) for row in emails
            ]
        return records

    async def erase_user_data(self, user_id: str, tenant_id: str | None = None) -> dict[str, int]:
        """Deletes every row about the user; with ``tenant_id`` (its admin's request) only
        the grant to that tenant and the sessions in it. Idempotent: a second call deletes
        nothing."""
        counts: dict[str, int] = {}
        async with self.db.transaction() as session:
            if tenant_id is not None:
                for table in (tenant_grants, sessions):
                    result = await session.execute(
                        delete(table).where(
                            table.c.user_id == user_id, table.c.tenant_id == tenant_id
                        )
                    )
                    counts[table.name] = rowcount(result)
                return counts
            email = await fetch_value(
                session, select(users.c.email_lower).where(users.c.id == user_id)
            )
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
