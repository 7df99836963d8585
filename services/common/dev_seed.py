"""Development seed data, the same in every service (each seeds its own part on first start).

Ids are derived from names so every service agrees on them without talking to the others.
Never applied with production settings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from adx.settings import Environment, Settings

_NAMESPACE = uuid.UUID("0b9f6d0e-7a43-4c55-9d57-8a3f2c1e6b21")


def seed_user_id(email: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, email.lower()))


@dataclass(frozen=True)
class SeedTenant:
    id: str
    name: str
    owner_email: str
    plan: str = "professional"


@dataclass(frozen=True)
class SeedUser:
    email: str
    display_name: str
    # tenant id -> roles in it
    memberships: dict[str, tuple[str, ...]]

    @property
    def id(self) -> str:
        return seed_user_id(self.email)

    @property
    def default_tenant(self) -> str:
        return next(iter(self.memberships))


TENANTS = (
    SeedTenant(id="acme", name="Acme Corporation", owner_email="alice@acme.test"),
    SeedTenant(id="globex", name="Globex Corporation", owner_email="bob@globex.test"),
)
USERS = (
    SeedUser(
        email="alice@acme.test",
        display_name="Alice Anderson",
        memberships={"acme": ("owner", "admin", "member"), "globex": ("member",)},
    ),
    SeedUser(
        email="bob@globex.test",
        display_name="Bob Brown",
        memberships={"globex": ("owner", "admin", "member")},
    ),
)


def seeding_enabled(settings: Settings) -> bool:
    return settings.dev_seed and settings.environment is not Environment.PRODUCTION
