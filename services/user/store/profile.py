"""Profiles: one per user, global (visible in a tenant only through an active membership)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from contracts.errors import ErrorKind
from contracts.user import ProfileValues, UserProfile, UserStatus
from services.common.db import (
    Store,
    fetch_first,
    fetch_one,
    fetch_value,
    rowcount,
    utc,
    utc_or_none,
)
from services.common.errors import NotFound, ServiceError
from services.user.store.tables import profiles


def to_profile(row: Mapping[Any, Any]) -> UserProfile:
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
        deactivated_at=utc_or_none(row["deactivated_at"]),
        restore_deadline=utc_or_none(row["restore_deadline"]),
        version=row["version"],
    )


class ProfileConflict(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.CONFLICT, message)


class ProfilesMixin(Store):
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
                row = await fetch_one(
                    session, select(profiles).where(profiles.c.user_id == user_id)
                )
        except IntegrityError as error:
            raise ProfileConflict("the email is already used by another user") from error
        return to_profile(row), created

    async def get_profile(self, user_id: str) -> UserProfile | None:
        async with self.db.transaction() as session:
            row = await fetch_first(session, select(profiles).where(profiles.c.user_id == user_id))
        return None if row is None else to_profile(row)

    async def deactivation_operation(self, user_id: str) -> str | None:
        async with self.db.transaction() as session:
            value: str | None = await fetch_value(
                session,
                select(profiles.c.deactivation_operation_id).where(profiles.c.user_id == user_id),
            )
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
                row = await fetch_first(
                    session, select(profiles).where(profiles.c.user_id == user_id)
                )
        except IntegrityError as error:
            raise ProfileConflict("the email is already used by another user") from error
        if row is None:
            raise NotFound("user")
        if rowcount(result) == 0 and not (
            row["last_operation_id"] == operation_id and row["version"] == expected_version + 1
        ):
            raise ProfileConflict("the profile was changed meanwhile; try again")
        return to_profile(row)

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
            row = await fetch_first(session, select(profiles).where(profiles.c.user_id == user_id))
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
