"""Email: every message is written to the service's outbox table first, then sent over SMTP.

A message is identified by an idempotency key, so a retried activity never queues it twice;
sending is at-least-once (a crash between the SMTP answer and marking the row sent repeats it).
Without an SMTP host (dev), messages stay in the outbox, which dev endpoints list.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage

import aiosmtplib
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert, select, update

from adx.settings import Settings
from services.common.db import Database

log = structlog.stdlib.get_logger(__name__)


class OutgoingEmail(BaseModel):
    idempotency_key: str = Field(min_length=1, max_length=200)
    to: str
    subject: str
    body: str


class OutboxEntry(BaseModel):
    id: str
    to: str
    subject: str
    body: str
    created_at: datetime
    sent_at: datetime | None


def outbox_table(metadata: MetaData, prefix: str) -> Table:
    return Table(
        f"{prefix}_email_outbox",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("idempotency_key", String(200), nullable=False, unique=True),
        Column("recipient", String(320), nullable=False),
        Column("subject", String(300), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
    )


class EmailOutbox:
    def __init__(self, db: Database, table: Table, settings: Settings) -> None:
        self._db = db
        self._table = table
        self._settings = settings

    async def deliver(self, message: OutgoingEmail) -> OutboxEntry:
        """Queues the message once (by key) and sends it if it has not been sent yet."""
        entry = await self._enqueue(message)
        if entry.sent_at is None and self._settings.smtp_host:
            await self._send(entry)
            entry = await self._mark_sent(entry.id)
        return entry

    async def recent(self, limit: int = 50, to: str | None = None) -> list[OutboxEntry]:
        query = select(self._table).order_by(self._table.c.created_at.desc()).limit(limit)
        if to is not None:
            query = query.where(self._table.c.recipient == to)
        async with self._db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_entry(row) for row in rows]

    async def _enqueue(self, message: OutgoingEmail) -> OutboxEntry:
        table = self._table
        async with self._db.transaction() as session:
            found = (
                (
                    await session.execute(
                        select(table).where(table.c.idempotency_key == message.idempotency_key)
                    )
                )
                .mappings()
                .first()
            )
            if found is None:
                await session.execute(
                    insert(table).values(
                        id=str(uuid.uuid4()),
                        idempotency_key=message.idempotency_key,
                        recipient=message.to,
                        subject=message.subject,
                        body=message.body,
                        created_at=datetime.now(UTC),
                    )
                )
                found = (
                    (
                        await session.execute(
                            select(table).where(table.c.idempotency_key == message.idempotency_key)
                        )
                    )
                    .mappings()
                    .one()
                )
        return _entry(found)

    async def _mark_sent(self, entry_id: str) -> OutboxEntry:
        table = self._table
        async with self._db.transaction() as session:
            await session.execute(
                update(table).where(table.c.id == entry_id).values(sent_at=datetime.now(UTC))
            )
            row = (await session.execute(select(table).where(table.c.id == entry_id))).mappings()
            return _entry(row.one())

    async def _send(self, entry: OutboxEntry) -> None:
        settings = self._settings
        mime = MimeMessage()
        mime["From"] = settings.email_from
        mime["To"] = entry.to
        mime["Subject"] = entry.subject
        mime["Message-ID"] = f"<{entry.id}@adx-core>"
        mime.set_content(entry.body)
        await aiosmtplib.send(
            mime,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            timeout=15,
        )
        log.info("email.sent", outbox_id=entry.id, subject=entry.subject)


def _entry(row: object) -> OutboxEntry:
    mapping = dict(row)  # type: ignore[call-overload]
    return OutboxEntry(
        id=mapping["id"],
        to=mapping["recipient"],
        subject=mapping["subject"],
        body=mapping["body"],
        created_at=mapping["created_at"],
        sent_at=mapping["sent_at"],
    )
