"""The email outbox: what the tokens' emails leave behind once sent."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from services.auth.store.tables import email_outbox
from services.common.db import Store, fetch_first

# Links in sent emails are redacted in the outbox (the token in them is a live credential).
_LINK_TOKEN = re.compile(r"token=[A-Za-z0-9_\-]+")


class OutboxMixin(Store):
    async def redact_sent_email(self, idempotency_key: str) -> None:
        """Once sent, the outbox keeps the email without the live token in its link."""
        table = email_outbox
        async with self.db.transaction() as session:
            found = await fetch_first(
                session,
                select(table.c.id, table.c.body).where(
                    table.c.idempotency_key == idempotency_key,
                    table.c.sent_at.is_not(None),
                ),
            )
            if found is None:
                return
            redacted = _LINK_TOKEN.sub("token=[redacted]", found["body"])
            if redacted != found["body"]:
                await session.execute(
                    update(table).where(table.c.id == found["id"]).values(body=redacted)
                )
