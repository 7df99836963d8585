"""Data-subject requests: every row about a user in this service, exported or erased (across
tenants: it is their data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, or_, select, update

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
    async def export_user_data(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the user in this service (across tenants: it is their data)."""
        records: dict[str, list[dict[str, Any]]] = {}
        async with self.db.transaction() as session:
            email = await fetch_value(
                session, select(profiles.c.email).where(profiles.c.user_id == user_id)
            )
            queries: list[tuple[Table, Any]] = [
                (profiles, profiles.c.user_id == user_id),
                (memberships, memberships.c.user_id == user_id),
                (preferences, preferences.c.user_id == user_id),
                (
                    activity_log,
                    or_(activity_log.c.user_id == user_id, activity_log.c.actor_id == user_id),
                ),
                (bulk_items, bulk_items.c.user_id == user_id),
            ]
            if email is not None:
                queries.append((email_outbox, email_outbox.c.recipient == email))
            for table, condition in queries:
                rows = await fetch_all(session, select(table).where(condition))
                records[table.name] = [json_row(row) for row in rows]
        return records

    async def erase_user_data(self, user_id: str) -> dict[str, int]:
        """Deletes every row about the user; entries they made about others lose the actor.
        Idempotent: a repeat changes nothing."""
        counts: dict[str, int] = {}
        async with self.db.transaction() as session:
            email = await fetch_value(
                session, select(profiles.c.email).where(profiles.c.user_id == user_id)
            )
            for table in (preferences, memberships, bulk_items):
                result = await session.execute(table.delete().where(table.c.user_id == user_id))
                counts[table.name] = rowcount(result)
            result = await session.execute(
                activity_log.delete().where(activity_log.c.user_id == user_id)
            )
            anonymised = await session.execute(
                update(activity_log).where(activity_log.c.actor_id == user_id).values(actor_id=None)
            )
            counts[activity_log.name] = rowcount(result) + rowcount(anonymised)
            counts[email_outbox.name] = 0
            if email is not None:
                result = await session.execute(
                    email_outbox.delete().where(email_outbox.c.recipient == email)
                )
                counts[email_outbox.name] = rowcount(result)
            result = await session.execute(profiles.delete().where(profiles.c.user_id == user_id))
            counts[profiles.name] = rowcount(result)
        return counts
