"""Preferences (tenant-owned): one JSON document per member and tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from contracts.user import ActivityEntry
from services.common.db import Store, fetch_value
from services.user.store.activity import add_entry
from services.user.store.tables import preferences


class PreferencesMixin(Store):
    async def get_preferences(self, user_id: str, tenant_id: str) -> dict[str, Any] | None:
        async with self.db.transaction() as session:
            document = await fetch_value(
                session,
                select(preferences.c.document).where(
                    preferences.c.user_id == user_id,
                    preferences.c.tenant_id == tenant_id,
                ),
            )
        return None if document is None else dict(document)

    async def put_preferences(
        self, user_id: str, tenant_id: str, document: dict[str, Any], entry: ActivityEntry
    ) -> None:
        """Replaces the document and logs the change, in one transaction."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await session.execute(
                self.db.upsert(
                    preferences,
                    {"user_id": user_id, "tenant_id": tenant_id},
                    {"document": document, "updated_at": now},
                )
            )
            await add_entry(self.db, session, entry)
