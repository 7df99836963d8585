"""The user service's HTTP boundary and store rows (workflow/activity models are in
``contracts.user``)."""

from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from contracts.user import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    MAX_BULK_USERS,
    MAX_GRACE_PERIOD_SECONDS,
    AvatarUrl,
    BulkAction,
    ClearableField,
    DisplayName,
    Locale,
    Membership,
    ProfileChanges,
    Timezone,
    Title,
    UserId,
)
from services.common.openapi import without_null

# Store rows -------------------------------------------------------------------------------


class MembershipRow(Membership):
    """A membership with the profile fields the directory searches (a projection)."""

    email: str
    display_name: str
    suspended_by: str | None = None


# Profile ----------------------------------------------------------------------------------


def _never_null(schema: dict[str, Any]) -> None:
    """Documents an optional field that may be left out but not sent as null."""
    documented = without_null(schema)
    schema.clear()
    schema.update(documented)


class ProfileUpdate(BaseModel):
    """``PATCH /api/user/users/{id}``: the fields to change; ``null`` clears avatar_url or
    title. The email is the login identity, changed through the auth service only."""

    # At least one change (changes() refuses none).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # Absent: unchanged. Only avatar_url and title may be null (cleared).
    display_name: DisplayName | None = Field(default=None, json_schema_extra=_never_null)
    avatar_url: AvatarUrl | None = None
    locale: Locale | None = Field(default=None, json_schema_extra=_never_null)
    timezone: Timezone | None = Field(default=None, json_schema_extra=_never_null)
    title: Title | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> ProfileUpdate:
        for name in ("display_name", "locale", "timezone"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> ProfileChanges:
        """As the workflow's changes (raises ValidationError when nothing changes)."""
        explicit = self.model_fields_set
        cleared: list[ClearableField] = [
            name
            for name in ("avatar_url", "title")
            if name in explicit and getattr(self, name) is None
        ]
        return ProfileChanges(
            display_name=self.display_name,
            avatar_url=self.avatar_url,
            locale=self.locale,
            timezone=self.timezone,
            title=self.title,
            clear=cleared,
        )


# Directory --------------------------------------------------------------------------------


class DirectoryQuery(BaseModel):
    """``GET /api/user/users?search=&first=&after=``."""

    search: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    first: int = Field(default=20, ge=1, le=100)
    after: str | None = Field(default=None, max_length=500)

    def cursor(self) -> tuple[str, str] | None:
        return decode_cursor(self.after) if self.after else None


class DirectoryEntry(BaseModel):
    user_id: str
    display_name: str
    email: str
    roles: list[str]
    avatar_url: str | None = None
    title: str | None = None


class DirectoryPage(BaseModel):
    items: list[DirectoryEntry]
    # Opaque; pass it back as ``after`` for the next page. None: this is the last page.
    next_cursor: str | None = None


class InvalidCursor(ValueError):
    pass


def encode_cursor(name_key: str, user_id: str) -> str:
    raw = json.dumps([name_key, user_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor("invalid cursor") from error
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise InvalidCursor("invalid cursor")
    return value[0], value[1]


# Preferences ------------------------------------------------------------------------------


class Theme(StrEnum):
    LIGHT = "light"
    DARK = "dark"
    SYSTEM = "system"


class Digest(StrEnum):
    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"


class NotificationPreferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool = True
    in_app: bool = True
    digest: Digest = Digest.WEEKLY


class Preferences(BaseModel):
    """A user's preferences in one tenant (``GET``/``PUT /api/user/preferences``)."""

    model_config = ConfigDict(extra="forbid")

    theme: Theme = Theme.SYSTEM
    language: Locale = "en"
    notifications: NotificationPreferences = Field(default_factory=NotificationPreferences)
    # Dashboard widgets in display order (names chosen by the frontends).
    dashboard_widgets: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=30
    )


# Activity ---------------------------------------------------------------------------------


class ActivityQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)


# Operations -------------------------------------------------------------------------------


class DeactivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(
        default=DEFAULT_GRACE_PERIOD_SECONDS, ge=1, le=MAX_GRACE_PERIOD_SECONDS
    )
    reason: str | None = Field(default=None, max_length=300)


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_BULK_USERS)
    locale: Locale | None = None


class OperationAccepted(BaseModel):
    operation_id: str
