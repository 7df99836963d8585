"""The user service's tables and every query on them.

Profiles are global (one per user); a profile is visible in a tenant only through an active
membership there. Memberships, preferences, the activity log and bulk items are tenant-owned:
every query on them filters by tenant, except the two cross-tenant effects a user's own
account has by design (the profile projection sync and the deactivation, both keyed by user).

SQLite note: the driver opens a transaction at the first write, so operations that check and
then change start with their write (insert-if-absent of a claim, or a guarded UPDATE whose
row count says what happened) to stay atomic there too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.errors import ErrorKind
from contracts.user import (
    ActivityEntry,
    ActivityKind,
    BulkAction,
    BulkItemApplied,
    BulkItemInput,
    MembershipSnapshot,
    MembershipStatus,
    ProfileValues,
    UserProfile,
    UserStatus,
)
from services.common.db import Database, rowcount
from services.common.email import outbox_table
from services.common.errors import NotFound, ServiceError
from services.user.models import MembershipRow

metadata = MetaData()

profiles = Table(
    "user_profiles",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("avatar_url", String(2048), nullable=True),
    Column("locale", String(35), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("title", String(100), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deactivated_at", DateTime(timezone=True), nullable=True),
    Column("restore_deadline", DateTime(timezone=True), nullable=True),
    # The user_deactivation workflow that deactivated the profile (restore signals it).
    Column("deactivation_operation_id", String(255), nullable=True),
    Column("version", Integer, nullable=False),
    # The workflow that made the last change (a retried change is recognised by it).
    Column("last_operation_id", String(255), nullable=True),
)

memberships = Table(
    "user_memberships",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # Who suspended it (a workflow id): only that operation's restore reactivates it.
    Column("suspended_by", String(255), nullable=True),
    # Projection of the profile for directory search (kept in sync by user_profile_sync).
    Column("email", String(320), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("name_key", String(100), nullable=False),  # lower-cased display name: order + search
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The operation (user onboarding) that created the row: its compensation removes only that.
    Column("created_by", String(255), nullable=True),
    Index("ix_user_memberships_directory", "tenant_id", "status", "name_key", "user_id"),
)

preferences = Table(
    "user_preferences",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=True),
)

activity_log = Table(
    "user_activity_log",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("actor_id", String(64), nullable=True),
    Column("kind", String(50), nullable=False),
    Column("summary", String(300), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_user_activity_log_recent", "tenant_id", "user_id", "at"),
)

# One row per (bulk operation, user): the item's effect is applied in the same transaction
# that inserts it, so a retried or replayed item never applies twice.
bulk_items = Table(
    "user_bulk_items",
    metadata,
    Column("operation_id", String(255), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("changed", Boolean, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

email_outbox = outbox_table(metadata, "user")


def utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _profile(row: Mapping[Any, Any]) -> UserProfile:
    return UserProfile(
        user_id=row["user_id"],
        email=row["email"],
        display_name=row["display_name"],
        avatar_url=row["avatar_url"],
        locale=row["locale"],
        timezone=row["timezone"],
        title=row["title"],
        status=UserStatus(row["status"]),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        deactivated_at=_utc_or_none(row["deactivated_at"]),
        restore_deadline=_utc_or_none(row["restore_deadline"]),
        version=row["version"],
    )


def _membership(row: Mapping[Any, Any]) -> MembershipRow:
    return MembershipRow(
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        roles=list(row["roles"]),
        status=MembershipStatus(row["status"]),
        suspended_by=row["suspended_by"],
        email=row["email"],
        display_name=row["display_name"],
    )


def _entry(row: Mapping[Any, Any]) -> ActivityEntry:
    return ActivityEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        actor_id=row["actor_id"],
        kind=ActivityKind(row["kind"]),
        summary=row["summary"],
        at=utc(row["at"]),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        str(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in row.items()
    }


class ProfileConflict(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.CONFLICT, message)


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Profiles -------------------------------------------------------------------------

    async def create_profile(
        self,
        user_id: str,
        email: str,
        display_name: str,
        locale: str,
        timezone: str,
        operation_id: str | None = None,
    ) -> tuple[UserProfile, bool]:
        """Creates the profile if absent; returns it and whether it was created. Another
        user's email is a conflict."""
        now = datetime.now(UTC)
        try:
            async with self.db.transaction() as session:
                created = await self.db.insert_if_absent(
                    session,
                    profiles,
                    ["user_id"],
                    user_id=user_id,
                    email=email,
                    display_name=display_name,
                    avatar_url=None,
                    locale=locale,
                    timezone=timezone,
                    title=None,
                    status=UserStatus.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                    version=1,
                    last_operation_id=operation_id,
                )
                row = (
                    (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                    .mappings()
                    .one()
                )
        except IntegrityError as error:
            raise ProfileConflict("the email is already used by another user") from error
        return _profile(row), created

    async def get_profile(self, user_id: str) -> UserProfile | None:
        async with self.db.transaction() as session:
            row = (
                (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                .mappings()
                .first()
            )
        return None if row is None else _profile(row)

    async def deactivation_operation(self, user_id: str) -> str | None:
        async with self.db.transaction() as session:
            value: str | None = (
                await session.execute(
                    select(profiles.c.deactivation_operation_id).where(
                        profiles.c.user_id == user_id
                    )
                )
            ).scalar_one_or_none()
        return value

    async def update_profile(
        self, user_id: str, values: ProfileValues, *, expected_version: int, operation_id: str
    ) -> UserProfile:
        """Applies ``values`` if the profile is still at ``expected_version``; a retry of the
        same operation finds it applied and returns it unchanged."""
        now = datetime.now(UTC)
        try:
            async with self.db.transaction() as session:
                result = await session.execute(
                    update(profiles)
                    .where(
                        profiles.c.user_id == user_id,
                        profiles.c.version == expected_version,
                    )
                    .values(
                        **values.model_dump(),
                        updated_at=now,
                        version=expected_version + 1,
                        last_operation_id=operation_id,
                    )
                )
                row = (
                    (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                    .mappings()
                    .first()
                )
        except IntegrityError as error:
            raise ProfileConflict("the email is already used by another user") from error
        if row is None:
            raise NotFound("user")
        if rowcount(result) == 0 and not (
            row["last_operation_id"] == operation_id and row["version"] == expected_version + 1
        ):
            raise ProfileConflict("the profile was changed meanwhile; try again")
        return _profile(row)

    async def restore_profile(self, user_id: str, values: ProfileValues, operation_id: str) -> bool:
        """Puts ``values`` back, unless a later change (another operation) happened since."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(profiles)
                .where(
                    profiles.c.user_id == user_id,
                    profiles.c.last_operation_id == operation_id,
                )
                .values(
                    **values.model_dump(),
                    updated_at=datetime.now(UTC),
                    version=profiles.c.version + 1,
                    last_operation_id=f"{operation_id}:restored",
                )
            )
        return rowcount(result) == 1

    async def deactivate_profile(
        self, user_id: str, operation_id: str, restore_deadline: datetime
    ) -> bool:
        """Active -> deactivated by this operation; False if this operation already did it."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            result = await session.execute(
                update(profiles)
                .where(profiles.c.user_id == user_id, profiles.c.status == UserStatus.ACTIVE)
                .values(
                    status=UserStatus.DEACTIVATED.value,
                    deactivated_at=now,
                    restore_deadline=restore_deadline,
                    deactivation_operation_id=operation_id,
                    updated_at=now,
                    version=profiles.c.version + 1,
                )
            )
            if rowcount(result) == 1:
                return True
            row = (
                (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("user")
        if row["deactivation_operation_id"] == operation_id:
            return False
        raise ProfileConflict("the user is already deactivated")

    async def reactivate_profile(self, user_id: str, operation_id: str) -> bool:
        """Undoes this operation's deactivation; False if it is not (or no longer) in effect."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            result = await session.execute(
                update(profiles)
                .where(
                    profiles.c.user_id == user_id,
                    profiles.c.deactivation_operation_id == operation_id,
                )
                .values(
                    status=UserStatus.ACTIVE.value,
                    deactivated_at=None,
                    restore_deadline=None,
                    deactivation_operation_id=None,
                    updated_at=now,
                    version=profiles.c.version + 1,
                )
            )
        return rowcount(result) == 1

    async def sync_projections(self, user_id: str, email: str, display_name: str) -> list[str]:
        """Copies the profile's searchable fields into the user's membership rows (every
        tenant: they all show the same person). Returns the tenants updated."""
        async with self.db.transaction() as session:
            await session.execute(
                update(memberships)
                .where(memberships.c.user_id == user_id)
                .values(
                    email=email,
                    display_name=display_name,
                    name_key=display_name.lower(),
                    updated_at=datetime.now(UTC),
                )
            )
            tenants = (
                await session.execute(
                    select(memberships.c.tenant_id)
                    .where(memberships.c.user_id == user_id)
                    .order_by(memberships.c.tenant_id)
                )
            ).scalars()
            return list(tenants)

    # Memberships ----------------------------------------------------------------------

    async def membership(self, user_id: str, tenant_id: str) -> MembershipRow | None:
        row = await self.db.first(
            select(memberships).where(
                memberships.c.user_id == user_id,
                memberships.c.tenant_id == tenant_id,
            )
        )
        return None if row is None else _membership(row)

    async def membership_snapshot(self, user_id: str, tenant_id: str) -> MembershipSnapshot | None:
        """The row as stored, for reset_membership to put back."""
        row = await self.db.first(
            select(memberships).where(
                memberships.c.user_id == user_id,
                memberships.c.tenant_id == tenant_id,
            )
        )
        if row is None:
            return None
        return MembershipSnapshot(
            user_id=row["user_id"],
            tenant_id=row["tenant_id"],
            roles=list(row["roles"]),
            status=MembershipStatus(row["status"]),
            suspended_by=row["suspended_by"],
            created_by=row["created_by"],
        )

    async def reset_membership(
        self, user_id: str, tenant_id: str, previous: MembershipSnapshot | None
    ) -> bool:
        """Puts the row back as ``previous`` was (None: removes it); the directory fields
        come from the profile. True if this call changed anything."""
        where = (memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            if previous is None:
                result = await session.execute(memberships.delete().where(*where))
                return rowcount(result) == 1
            values: dict[str, Any] = {
                "roles": previous.roles,
                "status": previous.status.value,
                "suspended_by": previous.suspended_by,
                "created_by": previous.created_by,
            }
            current = (await session.execute(select(memberships).where(*where))).mappings().first()
            if current is not None and all(current[k] == v for k, v in values.items()):
                return False
            profile = (
                (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                .mappings()
                .first()
            )
            if profile is None:
                raise NotFound("user")
            await session.execute(
                self.db.insert(memberships)
                .values(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    email=profile["email"],
                    display_name=profile["display_name"],
                    name_key=profile["display_name"].lower(),
                    updated_at=now,
                    **values,
                )
                .on_conflict_do_update(
                    index_elements=["user_id", "tenant_id"], set_={**values, "updated_at": now}
                )
            )
        return True

    async def upsert_membership(
        self, user_id: str, tenant_id: str, roles: list[str]
    ) -> MembershipRow:
        """Adds the member (active) or sets their roles; the status is left as it is, so a
        suspended member stays suspended."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            profile = (
                (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                .mappings()
                .first()
            )
            if profile is None:
                raise NotFound("user")
            stmt = (
                self.db.insert(memberships)
                .values(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    roles=roles,
                    status=MembershipStatus.ACTIVE.value,
                    suspended_by=None,
                    email=profile["email"],
                    display_name=profile["display_name"],
                    name_key=profile["display_name"].lower(),
                    updated_at=now,
                )
                .on_conflict_do_update(
                    index_elements=["user_id", "tenant_id"],
                    set_={"roles": roles, "updated_at": now},
                )
            )
            await session.execute(stmt)
            row = (
                (
                    await session.execute(
                        select(memberships).where(
                            memberships.c.user_id == user_id,
                            memberships.c.tenant_id == tenant_id,
                        )
                    )
                )
                .mappings()
                .one()
            )
        return _membership(row)

    async def remove_membership(self, user_id: str, tenant_id: str) -> bool:
        """True if this call removed the membership."""
        async with self.db.transaction() as session:
            result = await session.execute(
                memberships.delete().where(
                    memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id
                )
            )
        return rowcount(result) == 1

    async def suspend_memberships(
        self, user_id: str, operation_key: str, tenant_id: str | None
    ) -> list[str]:
        """Suspends the user's active memberships (in ``tenant_id``, or all when None) on
        behalf of ``operation_key``; returns every tenant it holds suspended (so a retry
        answers the same)."""
        now = datetime.now(UTC)
        scope = [memberships.c.user_id == user_id]
        if tenant_id is not None:
            scope.append(memberships.c.tenant_id == tenant_id)
        async with self.db.transaction() as session:
            await session.execute(
                update(memberships)
                .where(*scope, memberships.c.status == MembershipStatus.ACTIVE)
                .values(
                    status=MembershipStatus.SUSPENDED.value,
                    suspended_by=operation_key,
                    updated_at=now,
                )
            )
            tenants = (
                await session.execute(
                    select(memberships.c.tenant_id)
                    .where(*scope, memberships.c.suspended_by == operation_key)
                    .order_by(memberships.c.tenant_id)
                )
            ).scalars()
            return list(tenants)

    async def restore_memberships(self, user_id: str, operation_key: str) -> list[str]:
        """Reactivates exactly the memberships ``operation_key`` suspended."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            tenants = list(
                (
                    await session.execute(
                        select(memberships.c.tenant_id)
                        .where(
                            memberships.c.user_id == user_id,
                            memberships.c.suspended_by == operation_key,
                        )
                        .order_by(memberships.c.tenant_id)
                    )
                ).scalars()
            )
            await session.execute(
                update(memberships)
                .where(
                    memberships.c.user_id == user_id,
                    memberships.c.suspended_by == operation_key,
                )
                .values(status=MembershipStatus.ACTIVE.value, suspended_by=None, updated_at=now)
            )
        return tenants

    async def search_directory(
        self,
        tenant_id: str,
        search: str,
        *,
        first: int,
        after: tuple[str, str] | None,
    ) -> list[tuple[MembershipRow, UserProfile]]:
        """Active members of the tenant whose display name (or a word of it) or email starts
        with ``search`` (case-insensitive), ordered by name then id; ``first + 1`` rows at
        most so the caller knows whether another page exists."""
        conditions = [
            memberships.c.tenant_id == tenant_id,
            memberships.c.status == MembershipStatus.ACTIVE,
            profiles.c.status == UserStatus.ACTIVE,
        ]
        prefix = search.strip().lower()
        if prefix:
            pattern = _escape_like(prefix)
            conditions.append(
                or_(
                    memberships.c.name_key.like(f"{pattern}%", escape="\\"),
                    memberships.c.name_key.like(f"% {pattern}%", escape="\\"),
                    memberships.c.email.like(f"{pattern}%", escape="\\"),
                )
            )
        if after is not None:
            name_key, user_id = after
            conditions.append(
                or_(
                    memberships.c.name_key > name_key,
                    and_(memberships.c.name_key == name_key, memberships.c.user_id > user_id),
                )
            )
        query = (
            select(memberships, *[c.label(f"p_{c.name}") for c in profiles.c])
            .join(profiles, profiles.c.user_id == memberships.c.user_id)
            .where(*conditions)
            .order_by(memberships.c.name_key, memberships.c.user_id)
            .limit(first + 1)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        found = []
        for row in rows:
            profile_row = {c.name: row[f"p_{c.name}"] for c in profiles.c}
            found.append((_membership(row), _profile(profile_row)))
        return found

    async def members_by_ids(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> list[tuple[MembershipRow, UserProfile]]:
        """The active members of the tenant among ``user_ids``, with their profiles, in one
        query (ordered by id). Anyone else (unknown ids, other tenants' users, suspended
        members) is simply absent: another tenant's user does not exist here."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return []
        query = (
            select(memberships, *[c.label(f"p_{c.name}") for c in profiles.c])
            .join(profiles, profiles.c.user_id == memberships.c.user_id)
            .where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.status == MembershipStatus.ACTIVE,
                memberships.c.user_id.in_(wanted),
            )
            .order_by(memberships.c.user_id)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(query)).mappings().all()
        found = []
        for row in rows:
            profile_row = {c.name: row[f"p_{c.name}"] for c in profiles.c}
            found.append((_membership(row), _profile(profile_row)))
        return found

    async def memberships_of(self, user_id: str) -> list[MembershipRow]:
        rows = await self.db.all_rows(
            select(memberships)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.tenant_id)
        )
        return [_membership(row) for row in rows]

    # Preferences ----------------------------------------------------------------------

    async def get_preferences(self, user_id: str, tenant_id: str) -> dict[str, Any] | None:
        async with self.db.transaction() as session:
            document = (
                await session.execute(
                    select(preferences.c.document).where(
                        preferences.c.user_id == user_id,
                        preferences.c.tenant_id == tenant_id,
                    )
                )
            ).scalar_one_or_none()
        return None if document is None else dict(document)

    async def put_preferences(
        self, user_id: str, tenant_id: str, document: dict[str, Any], entry: ActivityEntry
    ) -> None:
        """Replaces the document and logs the change, in one transaction."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(preferences)
                .values(user_id=user_id, tenant_id=tenant_id, document=document, updated_at=now)
                .on_conflict_do_update(
                    index_elements=["user_id", "tenant_id"],
                    set_={"document": document, "updated_at": now},
                )
            )
            await self._add_entry(session, entry)

    # Activity log ---------------------------------------------------------------------

    async def _add_entry(self, session: AsyncSession, entry: ActivityEntry) -> bool:
        return await self.db.insert_if_absent(
            session, activity_log, ["id"], **entry.model_dump(mode="python")
        )

    async def record_activity(self, entry: ActivityEntry) -> bool:
        """Writes the entry once (by id); False if it was already there."""
        async with self.db.transaction() as session:
            return await self._add_entry(session, entry)

    async def recent_activity(
        self, tenant_id: str, user_id: str, limit: int
    ) -> list[ActivityEntry]:
        rows = await self.db.all_rows(
            select(activity_log)
            .where(
                activity_log.c.tenant_id == tenant_id,
                activity_log.c.user_id == user_id,
            )
            .order_by(activity_log.c.at.desc(), activity_log.c.id.desc())
            .limit(limit)
        )
        return [_entry(row) for row in rows]

    # Bulk operations ------------------------------------------------------------------

    async def apply_bulk_item(self, item: BulkItemInput, actor_id: str) -> BulkItemApplied:
        """Applies one item of a bulk operation exactly once: the claim row, the change and
        its activity entry commit together; a repeat returns the recorded outcome. An item
        that cannot be applied raises (and leaves nothing behind)."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            claimed = await self.db.insert_if_absent(
                session,
                bulk_items,
                ["operation_id", "user_id"],
                operation_id=item.operation_id,
                user_id=item.user_id,
                tenant_id=item.tenant_id,
                action=item.action.value,
                changed=False,
                applied_at=now,
            )
            if not claimed:
                changed = (
                    await session.execute(
                        select(bulk_items.c.changed).where(
                            bulk_items.c.operation_id == item.operation_id,
                            bulk_items.c.user_id == item.user_id,
                            bulk_items.c.tenant_id == item.tenant_id,
                        )
                    )
                ).scalar_one()
                return BulkItemApplied(user_id=item.user_id, changed=bool(changed))
            row = (
                (
                    await session.execute(
                        select(memberships, profiles.c.status.label("profile_status"))
                        .join(profiles, profiles.c.user_id == memberships.c.user_id)
                        .where(
                            memberships.c.user_id == item.user_id,
                            memberships.c.tenant_id == item.tenant_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("user")
            kind, summary, changed = await self._apply_action(session, item, row, actor_id, now)
            if changed:
                await self._add_entry(
                    session,
                    ActivityEntry(
                        id=f"{item.operation_id}:{item.user_id}",
                        tenant_id=item.tenant_id,
                        user_id=item.user_id,
                        actor_id=actor_id,
                        kind=kind,
                        summary=summary,
                        at=now,
                    ),
                )
                await session.execute(
                    update(bulk_items)
                    .where(
                        bulk_items.c.operation_id == item.operation_id,
                        bulk_items.c.user_id == item.user_id,
                    )
                    .values(changed=True)
                )
        return BulkItemApplied(user_id=item.user_id, changed=changed)

    async def _apply_action(
        self,
        session: AsyncSession,
        item: BulkItemInput,
        row: Mapping[Any, Any],
        actor_id: str,
        now: datetime,
    ) -> tuple[ActivityKind, str, bool]:
        in_tenant = and_(
            memberships.c.user_id == item.user_id, memberships.c.tenant_id == item.tenant_id
        )
        if item.action is BulkAction.SUSPEND:
            if item.user_id == actor_id:
                raise ServiceError(ErrorKind.CONFLICT, "you cannot suspend yourself")
            if row["status"] == MembershipStatus.SUSPENDED:
                return ActivityKind.MEMBERSHIP_SUSPENDED, "", False
            await session.execute(
                update(memberships)
                .where(in_tenant)
                .values(
                    status=MembershipStatus.SUSPENDED.value,
                    suspended_by=item.operation_id,
                    updated_at=now,
                )
            )
            return ActivityKind.MEMBERSHIP_SUSPENDED, "membership suspended (bulk)", True
        if item.action is BulkAction.RESTORE:
            if row["profile_status"] == UserStatus.DEACTIVATED:
                raise ServiceError(ErrorKind.CONFLICT, "the user is deactivated")
            if row["status"] == MembershipStatus.ACTIVE:
                return ActivityKind.MEMBERSHIP_RESTORED, "", False
            await session.execute(
                update(memberships)
                .where(in_tenant)
                .values(status=MembershipStatus.ACTIVE.value, suspended_by=None, updated_at=now)
            )
            return ActivityKind.MEMBERSHIP_RESTORED, "membership restored (bulk)", True
        # update_locale
        assert item.locale is not None
        result = await session.execute(
            update(profiles)
            .where(profiles.c.user_id == item.user_id, profiles.c.locale != item.locale)
            .values(
                locale=item.locale,
                updated_at=now,
                version=profiles.c.version + 1,
                last_operation_id=item.operation_id,
            )
        )
        changed = rowcount(result) == 1
        return ActivityKind.LOCALE_CHANGED, f"locale set to {item.locale} (bulk)", changed

    # User onboarding ------------------------------------------------------------------

    async def delete_created_profile(self, user_id: str, operation_id: str) -> bool:
        """Deletes the profile if ``operation_id`` created it and it is unchanged since, and
        no membership shows it anywhere."""
        async with self.db.transaction() as session:
            result = await session.execute(
                profiles.delete().where(
                    profiles.c.user_id == user_id,
                    profiles.c.last_operation_id == operation_id,
                    profiles.c.version == 1,
                    ~select(memberships.c.user_id).where(memberships.c.user_id == user_id).exists(),
                )
            )
        return rowcount(result) == 1

    async def init_preferences(
        self,
        user_id: str,
        tenant_id: str,
        roles: list[str],
        document: dict[str, Any],
        operation_id: str,
    ) -> dict[str, Any]:
        """The member's directory row and preferences in the tenant, each inserted if absent
        (marked with the operation); returns the preferences as stored."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            profile = (
                (await session.execute(select(profiles).where(profiles.c.user_id == user_id)))
                .mappings()
                .first()
            )
            if profile is None:
                raise NotFound("user")
            await self.db.insert_if_absent(
                session,
                memberships,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                roles=roles,
                status=MembershipStatus.ACTIVE.value,
                suspended_by=None,
                email=profile["email"],
                display_name=profile["display_name"],
                name_key=profile["display_name"].lower(),
                updated_at=now,
                created_by=operation_id,
            )
            await self.db.insert_if_absent(
                session,
                preferences,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                document=document,
                updated_at=now,
                created_by=operation_id,
            )
            stored = (
                await session.execute(
                    select(preferences.c.document).where(
                        preferences.c.user_id == user_id, preferences.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one()
        return dict(stored)

    async def discard_preferences(self, user_id: str, tenant_id: str, operation_id: str) -> int:
        """Removes the rows ``operation_id`` created in the tenant; how many."""
        count = 0
        async with self.db.transaction() as session:
            for table in (preferences, memberships):
                result = await session.execute(
                    table.delete().where(
                        table.c.user_id == user_id,
                        table.c.tenant_id == tenant_id,
                        table.c.created_by == operation_id,
                    )
                )
                count += rowcount(result)
        return count

    # Data-subject requests ------------------------------------------------------------

    async def export_user_data(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the user in this service (across tenants: it is their data)."""
        records: dict[str, list[dict[str, Any]]] = {}
        async with self.db.transaction() as session:
            email = (
                await session.execute(select(profiles.c.email).where(profiles.c.user_id == user_id))
            ).scalar_one_or_none()
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
                rows = (await session.execute(select(table).where(condition))).mappings().all()
                records[table.name] = [_json_row(row) for row in rows]
        return records

    async def erase_user_data(self, user_id: str) -> dict[str, int]:
        """Deletes every row about the user; entries they made about others lose the actor.
        Idempotent: a repeat changes nothing."""
        counts: dict[str, int] = {}
        async with self.db.transaction() as session:
            email = (
                await session.execute(select(profiles.c.email).where(profiles.c.user_id == user_id))
            ).scalar_one_or_none()
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

    # Development seed -----------------------------------------------------------------

    async def seed_member(
        self, user_id: str, email: str, display_name: str, tenant_id: str, roles: list[str]
    ) -> None:
        """Idempotent: creates what is missing, changes nothing that exists."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await self.db.insert_if_absent(
                session,
                profiles,
                ["user_id"],
                user_id=user_id,
                email=email,
                display_name=display_name,
                locale="en",
                timezone="UTC",
                status=UserStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
                version=1,
            )
            await self.db.insert_if_absent(
                session,
                memberships,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                roles=roles,
                status=MembershipStatus.ACTIVE.value,
                email=email,
                display_name=display_name,
                name_key=display_name.lower(),
                updated_at=now,
            )

    async def count(self, table: Table, **where: Any) -> int:
        """Rows of ``table`` matching the equalities (tests and diagnostics)."""
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        async with self.db.transaction() as session:
            return int((await session.execute(query)).scalar_one())
