"""The User entity (owned here), preferences, and the reads behind them: cached gateway calls
and the per-request DataLoader that turns N user lookups into one batch call."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from aiodataloader import DataLoader
from pydantic import BaseModel, ValidationError
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.types import Info

from contracts.context import RequestContext
from contracts.user import UserProfile
from gateway_client import CacheScope, GatewayError, GatewayNotFound, build_path, tag
from graph.context import GraphContext
from graph.errors import ClientError, bad_input, camel, from_gateway_error, not_found

# How long reads through the gateway are served from the cache (mutations invalidate them
# sooner through their tags).
READ_TTL_SECONDS = 30.0
# The user service answers at most this many ids per batch call.
MAX_BATCH = 100


# Cache tags --------------------------------------------------------------------------------
# One user as the caller's tenant sees them (profile, roles): invalidated when they change.
def user_tag(who: RequestContext, user_id: str) -> str:
    return tag(who, "user", user_id=user_id)


# The tenant's member directory (search pages).
def directory_tag(who: RequestContext) -> str:
    return tag(who, "directory", CacheScope.TENANT)


# The caller's preferences in the tenant.
def preferences_tag(who: RequestContext, user_id: str | None = None) -> str:
    return tag(who, "preferences", user_id=user_id)


# The caller's aggregated dashboard parts.
def dashboard_tag(who: RequestContext, user_id: str | None = None) -> str:
    return tag(who, "dashboard", user_id=user_id)


# Wire models (the user service's JSON) --------------------------------------------------------


class DirectoryEntry(BaseModel):
    user_id: str
    display_name: str
    email: str
    roles: list[str]
    avatar_url: str | None = None
    title: str | None = None


class DirectoryPage(BaseModel):
    items: list[DirectoryEntry]
    next_cursor: str | None = None


class UserBatch(BaseModel):
    items: list[UserProfile]


class NotificationPreferencesData(BaseModel):
    email: bool = True
    in_app: bool = True
    digest: str = "weekly"


class PreferencesData(BaseModel):
    theme: str = "system"
    language: str = "en"
    notifications: NotificationPreferencesData = NotificationPreferencesData()
    dashboard_widgets: list[str] = []


# Errors ---------------------------------------------------------------------------------------


def invalid_input(error: ValidationError, prefix: str = "input") -> ClientError:
    """A pydantic validation error on a mutation's input as BAD_USER_INPUT with fields."""
    fields = [
        {
            "field": ".".join([prefix, *(camel(str(part)) for part in item["loc"])]),
            "message": item["msg"],
        }
        for item in error.errors()
    ]
    return bad_input("invalid input", fields)


# Reads through the gateway ---------------------------------------------------------------------


async def fetch_users(context: GraphContext, ids: list[str]) -> dict[str, UserProfile]:
    """The users among ``ids`` the caller's tenant can see, by id: one cached gateway call
    (``/users/{id}`` for one id, ``/users?ids=`` for more; 100 ids per call)."""
    who = await context.require_identity()
    # An id that cannot be a user id does not exist (and must not reach a URL).
    wanted = sorted({i for i in ids if 0 < len(i) <= 64 and "," not in i and i not in (".", "..")})
    if not wanted:
        return {}
    gateway = context.deps.gateway
    try:
        if len(wanted) == 1:
            try:
                single = await gateway.get_json(
                    who,
                    build_path("/api/user/users/{user_id}", user_id=wanted[0]),
                    token=context.token,
                    cache_ttl=READ_TTL_SECONDS,
                    tags=[user_tag(who, wanted[0])],
                    query_name="user.user",
                    cache_scope=CacheScope.TENANT,
                )
            except GatewayNotFound:
                return {}
            profiles = [UserProfile.model_validate(single)]
        else:
            chunks = [wanted[i : i + MAX_BATCH] for i in range(0, len(wanted), MAX_BATCH)]
            answers = await asyncio.gather(
                *(
                    gateway.get_json(
                        who,
                        "/api/user/users",
                        token=context.token,
                        params={"ids": ",".join(chunk)},
                        cache_ttl=READ_TTL_SECONDS,
                        tags=[user_tag(who, i) for i in chunk],
                        query_name="user.users_by_id",
                        cache_scope=CacheScope.TENANT,
                    )
                    for chunk in chunks
                )
            )
            profiles = [p for answer in answers for p in UserBatch.model_validate(answer).items]
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return {profile.user_id: profile for profile in profiles}


def user_loader(context: GraphContext) -> DataLoader[str, UserProfile | None]:
    """Users by id, one batch per request: entity references, list fields, file owners and
    activity actors all load through it."""

    async def batch(ids: list[str]) -> list[UserProfile | None]:
        found = await fetch_users(context, ids)
        return [found.get(i) for i in ids]

    loader: DataLoader[str, UserProfile | None] = context.loader("users", batch)
    return loader


async def load_user(context: GraphContext, user_id: str) -> UserProfile:
    profile: UserProfile | None = await user_loader(context).load(user_id)
    if profile is None:
        raise not_found("user")
    return profile


async def fetch_directory(
    context: GraphContext, search: str, first: int, after: str | None
) -> DirectoryPage:
    who = await context.require_identity()
    params: dict[str, str | int] = {"search": search, "first": first}
    if after is not None:
        params["after"] = after
    try:
        data = await context.deps.gateway.get_json(
            who,
            "/api/user/users",
            token=context.token,
            params=params,
            cache_ttl=READ_TTL_SECONDS,
            tags=[directory_tag(who)],
            query_name="user.directory",
            cache_scope=CacheScope.TENANT,
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return DirectoryPage.model_validate(data)


async def fetch_preferences(context: GraphContext, *, cached: bool = True) -> PreferencesData:
    who = await context.require_identity()
    try:
        data = await context.deps.gateway.get_json(
            who,
            "/api/user/preferences",
            token=context.token,
            cache_ttl=READ_TTL_SECONDS if cached else None,
            tags=[preferences_tag(who)],
            query_name="user.preferences",
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return PreferencesData.model_validate(data)


# GraphQL types -----------------------------------------------------------------------------------


@strawberry.federation.type(name="Tenant", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class TenantRef:
    """A reference to a tenant; the tenant subgraph owns its fields."""

    id: strawberry.ID


@strawberry.enum(name="UserStatus")
class UserStatusValue(Enum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@strawberry.federation.type(name="User", keys=["id"])
class User:
    """A user as the caller's tenant sees them. Fields not known yet (a directory entry
    carries only some, an entity reference none) are loaded through the request's user
    DataLoader: N users, one batch call."""

    id: strawberry.ID
    known: strawberry.Private[Mapping[str, Any]]

    @classmethod
    def of(cls, profile: UserProfile) -> User:
        return cls(id=strawberry.ID(profile.user_id), known=profile.model_dump())

    @classmethod
    def ref(cls, user_id: str) -> User:
        return cls(id=strawberry.ID(user_id), known={})

    @classmethod
    async def resolve_reference(cls, info: Info[GraphContext, Any], id: strawberry.ID) -> User:
        return cls.of(await load_user(info.context, str(id)))

    async def _value(self, info: Info[GraphContext, Any], name: str) -> Any:
        if name in self.known:
            return self.known[name]
        profile = await load_user(info.context, str(self.id))
        return getattr(profile, name)

    # Shareable: the auth subgraph answers it too, for the session's own account (login).
    @strawberry.federation.field(shareable=True)
    async def email(self, info: Info[GraphContext, Any]) -> str:
        return cast(str, await self._value(info, "email"))

    @strawberry.field
    async def display_name(self, info: Info[GraphContext, Any]) -> str:
        return cast(str, await self._value(info, "display_name"))

    @strawberry.field
    async def avatar_url(self, info: Info[GraphContext, Any]) -> str | None:
        return cast(str | None, await self._value(info, "avatar_url"))

    @strawberry.field
    async def title(self, info: Info[GraphContext, Any]) -> str | None:
        return cast(str | None, await self._value(info, "title"))

    @strawberry.field(description="Roles in the caller's tenant.")
    async def roles(self, info: Info[GraphContext, Any]) -> list[str]:
        return list(await self._value(info, "roles"))

    @strawberry.field
    async def locale(self, info: Info[GraphContext, Any]) -> str:
        return cast(str, await self._value(info, "locale"))

    @strawberry.field
    async def timezone(self, info: Info[GraphContext, Any]) -> str:
        return cast(str, await self._value(info, "timezone"))

    @strawberry.field
    async def status(self, info: Info[GraphContext, Any]) -> UserStatusValue:
        return UserStatusValue(str(await self._value(info, "status")))

    @strawberry.field
    async def created_at(self, info: Info[GraphContext, Any]) -> datetime:
        return cast(datetime, await self._value(info, "created_at"))

    @strawberry.field
    async def updated_at(self, info: Info[GraphContext, Any]) -> datetime:
        return cast(datetime, await self._value(info, "updated_at"))


def user_from_entry(entry: DirectoryEntry) -> User:
    return User(id=strawberry.ID(entry.user_id), known=entry.model_dump())


@strawberry.enum
class Theme(Enum):
    LIGHT = "light"
    DARK = "dark"
    SYSTEM = "system"


@strawberry.enum
class NotificationDigest(Enum):
    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"


@strawberry.type
class NotificationPreferences:
    email: bool
    in_app: bool
    digest: NotificationDigest


@strawberry.type
class Preferences:
    """The caller's preferences in the current tenant."""

    theme: Theme
    language: str
    notifications: NotificationPreferences
    dashboard_widgets: list[str]

    @classmethod
    def of(cls, data: PreferencesData) -> Preferences:
        return cls(
            theme=Theme(data.theme),
            language=data.language,
            notifications=NotificationPreferences(
                email=data.notifications.email,
                in_app=data.notifications.in_app,
                digest=NotificationDigest(data.notifications.digest),
            ),
            dashboard_widgets=list(data.dashboard_widgets),
        )


@strawberry.input
class NotificationPreferencesInput:
    email: bool | None = None
    in_app: bool | None = None
    digest: NotificationDigest | None = None


@strawberry.input(description="Fields left out keep their current value.")
class PreferencesInput:
    theme: Theme | None = None
    language: str | None = None
    notifications: NotificationPreferencesInput | None = None
    dashboard_widgets: list[str] | None = None

    def apply_to(self, current: PreferencesData) -> dict[str, Any]:
        data = current.model_dump(mode="json")
        if self.theme is not None:
            data["theme"] = self.theme.value
        if self.language is not None:
            data["language"] = self.language
        if self.dashboard_widgets is not None:
            data["dashboard_widgets"] = list(self.dashboard_widgets)
        wanted = self.notifications
        if wanted is not None:
            if wanted.email is not None:
                data["notifications"]["email"] = wanted.email
            if wanted.in_app is not None:
                data["notifications"]["in_app"] = wanted.in_app
            if wanted.digest is not None:
                data["notifications"]["digest"] = wanted.digest.value
        return data


@strawberry.input
class OnboardUserInput:
    email: str
    display_name: str
    roles: list[str] | None = None
    locale: str | None = None
    timezone: str | None = None
    tenant_name: str | None = strawberry.field(
        default=None, description="Shown in the invitation email; the tenant id when absent."
    )
