"""Data-subject requests: the rows about a user in this service, exported or erased (across
tenants for the user's own request, one tenant's for its admin's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, or_, select, update

from services.common.db import Store, fetch_all, fetch_value, json_row, rowcount
from services.user.store.tables import (
    activity_log,
    bulk_items,
    email_outbox,
    memberships,
    preferences,
    profiles,
)


class SubjectsMixin(Store):
    async def export_user_data(
        self, user_id: str, tenant_id: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Every row about the user in this service: across tenants (None: it is their
        data), or what one tenant holds about them (its admin's request: the profile, and
        the tenant's membership, preferences, activity and bulk items)."""
        records: dict[str, list[dict[str, Any]]] = {}
        async with self.db.transaction() as session:
            email = await fetch_value(
                session, select(profiles.c.email).where(profiles.c.user_id == user_id)
            )
            queries: list[tuple[Table, Any]] = [
                (profiles, profiles.c.user_id == user_id),
                *_tenant_rows(user_id, tenant_id),
            ]
            if email is not None and tenant_id is None:
                queries.append((email_outbox, email_outbox.c.recipient == email))
            for table, condition in queries:
                rows = await fetch_all(session, select(table).where(condition))
                records[table.name] = [json_row(row) for row in rows]
        return records

    async def erase_user_data(self, user_id: str, tenant_id: str | None = None) -> dict[str, int]:
        """Deletes every row about the user (None), or what one tenant holds about them
        (its admin's request: the profile, kept for the user's other tenants, stays);
        entries they made about others lose the actor. Idempotent: a repeat changes
        nothing."""
        counts: dict[str, int] = {}
        async with self.db.transaction() as session:
            email = await fetch_value(
                session, select(profiles.c.email).where(profiles.c.user_id == user_id)
            )
            for table in (preferences, memberships, bulk_items):
                result = await session.execute(
                    table.delete().where(table.c.user_id == user_id, *_in(table, tenant_id))
                )
                counts[table.name] = rowcount(result)
            result = await session.execute(
                activity_log.delete().where(
                    activity_log.c.user_id == user_id, *_in(activity_log, tenant_id)
                )
            )
            anonymised = await session.execute(
                update(activity_log)
                .where(activity_log.c.actor_id == user_id, *_in(activity_log, tenant_id))
                .values(actor_id=None)
            )
            counts[activity_log.name] = rowcount(result) + rowcount(anonymised)
            if tenant_id is not None:
                return counts
            counts[email_outbox.name] = 0
            if email is not None:
                result = await session.execute(
                    email_outbox.delete().where(email_outbox.c.recipient == email)
                )
                counts[email_outbox.name] = rowcount(result)
            result = await session.execute(profiles.delete().where(profiles.c.user_id == user_id))
            counts[profiles.name] = rowcount(result)
        return counts


def _in(table: Table, tenant_id: str | None) -> list[Any]:
    """The condition "in this tenant" (none: every tenant)."""
    return [] if tenant_id is None else [table.c.tenant_id == tenant_id]


def _tenant_rows(user_id: str, tenant_id: str | None) -> list[tuple[Table, Any]]:
    """The per-tenant tables' rows about the user (in one tenant, or all)."""
    return [
        (memberships, and_(memberships.c.user_id == user_id, *_in(memberships, tenant_id))),
        (preferences, and_(preferences.c.user_id == user_id, *_in(preferences, tenant_id))),
        (
            activity_log,
            and_(
                or_(activity_log.c.user_id == user_id, activity_log.c.actor_id == user_id),
                *_in(activity_log, tenant_id),
            ),
        ),
        (bulk_items, and_(bulk_items.c.user_id == user_id, *_in(bulk_items, tenant_id))),
    ]
