"""Helpers of the workflow service tests: the tenant stand-in (until the tenant service is
there: activities under the real names, backed by a real table), table snapshots, identities.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Column, MetaData, String, Table, and_, delete, select, text
from sqlalchemy.dialects import sqlite
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext
from contracts.tenant import (
    AddMemberInput,
    MemberAdded,
    RemoveMemberInput,
    TenantActivity,
    UserDataErased,
    UserDataExport,
    UserDataRequest,
)
from services.common.activity import service_activity
from services.common.db import Database
from services.common.dev_seed import USERS
from services.common.errors import data_subject_scope, ensure_tenant
from tests.support.tables import holds_state

ALICE = USERS[0]  # acme owner/admin/member, globex member
BOB = USERS[1]  # globex owner/admin/member
ADMIN_ROLES = ("owner", "admin", "member")
ALICE_IN_ACME = RequestContext(user_id=ALICE.id, tenant_id="acme", roles=ADMIN_ROLES)
BOB_IN_GLOBEX = RequestContext(user_id=BOB.id, tenant_id="globex", roles=ADMIN_ROLES)


def member_in_acme(user_id: str) -> RequestContext:
    return RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.test"


def bearer(settings: Settings, context: RequestContext) -> dict[str, str]:
    """An Authorization header with a real RS256 access token for ``context``."""
    token, _claims = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


# Tenant stand-in ---------------------------------------------------------------------------

standin_metadata = MetaData()
tenant_members = Table(
    "tenant_members",
    standin_metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("added_by", String(255), nullable=True),
)


class TenantStandIn:
    """The tenant service's activities used by the cross-service workflows, registered under
    their real names (Temporal's testing pattern), on a real table. ``gate`` holds add_member
    (heartbeating, so a cancellation reaches it) until the test opens it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.gate: asyncio.Event | None = None
        self.add_calls = 0

    async def create(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(standin_metadata.create_all)
            for tenant_id, roles in (("acme", list(ADMIN_ROLES)), ("globex", ["member"])):
                await conn.execute(
                    sqlite.insert(tenant_members)
                    .values(tenant_id=tenant_id, user_id=ALICE.id, roles=roles, added_by=None)
                    .on_conflict_do_nothing()
                )

    def all(self) -> list[Callable[..., Any]]:
        return [self.add_member, self.remove_member, self.export_user_data, self.erase_user_data]

    @service_activity(TenantActivity.ADD_MEMBER)
    async def add_member(self, input: AddMemberInput) -> MemberAdded:
        ensure_tenant(input.tenant_id, "tenant")
        self.add_calls += 1
        if self.gate is not None:
            while not self.gate.is_set():
                activity.heartbeat()
                await asyncio.sleep(0.1)
        async with self.db.transaction() as session:
            inserted = await session.execute(
                sqlite.insert(tenant_members)
                .values(
                    tenant_id=input.tenant_id,
                    user_id=input.user_id,
                    roles=input.roles,
                    added_by=input.operation_id,
                )
                .on_conflict_do_nothing()
            )
            added_by = (
                await session.execute(
                    select(tenant_members.c.added_by).where(
                        tenant_members.c.tenant_id == input.tenant_id,
                        tenant_members.c.user_id == input.user_id,
                    )
                )
            ).scalar_one()
        created = inserted.rowcount == 1 or added_by == input.operation_id  # type: ignore[attr-defined]
        return MemberAdded(
            tenant_id=input.tenant_id, user_id=input.user_id, roles=input.roles, created=created
        )

    @service_activity(TenantActivity.REMOVE_MEMBER)
    async def remove_member(self, input: RemoveMemberInput) -> None:
        ensure_tenant(input.tenant_id, "tenant")
        async with self.db.transaction() as session:
            await session.execute(
                delete(tenant_members).where(
                    tenant_members.c.tenant_id == input.tenant_id,
                    tenant_members.c.user_id == input.user_id,
                    tenant_members.c.added_by == input.operation_id,
                )
            )

    def _data_subject(self, user_id: str) -> Any:
        """The rows a request about ``user_id`` covers, as the real one decides: the user's
        own, every tenant's; a tenant admin's, that tenant's."""
        scope = data_subject_scope(user_id)
        mine = tenant_members.c.user_id == user_id
        return mine if scope is None else and_(mine, tenant_members.c.tenant_id == scope)

    @service_activity(TenantActivity.EXPORT_USER_DATA)
    async def export_user_data(self, input: UserDataRequest) -> UserDataExport:
        covered = self._data_subject(input.user_id)
        async with self.db.transaction() as session:
            rows = (await session.execute(select(tenant_members).where(covered))).mappings().all()
        return UserDataExport(
            service="tenant",
            user_id=input.user_id,
            records={"tenant_members": [dict(row) for row in rows]},
        )

    @service_activity(TenantActivity.ERASE_USER_DATA)
    async def erase_user_data(self, input: UserDataRequest) -> UserDataErased:
        covered = self._data_subject(input.user_id)
        async with self.db.transaction() as session:
            result = await session.execute(delete(tenant_members).where(covered))
        return UserDataErased(
            service="tenant",
            user_id=input.user_id,
            rows={"tenant_members": result.rowcount},  # type: ignore[attr-defined]
        )


def failing(name: str) -> Callable[..., Any]:
    """A stand-in under ``name`` that fails for good, changing nothing."""

    @activity.defn(name=name)
    async def fail(input: Any) -> None:
        raise ApplicationError(
            f"injected failure in {name}", type="ExternalServiceError", non_retryable=True
        )

    return fail


def activity_name(fn: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(fn)
    assert definition is not None
    assert definition.name is not None
    return definition.name


def replacing(activities: list[Callable[..., Any]], name: str | None) -> list[Callable[..., Any]]:
    """The real activities with the one called ``name`` (if any) replaced by a failing one."""
    if name is None or all(activity_name(fn) != name for fn in activities):
        return activities
    return [fn for fn in activities if activity_name(fn) != name] + [failing(name)]


# Table snapshots ------------------------------------------------------------------------------


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that holds state (tests/support/tables.py), sorted: two
    snapshots are equal exactly when the stores hold the same data."""

    def tables(conn: Any) -> list[str]:
        from sqlalchemy import inspect

        return [name for name in inspect(conn).get_table_names() if holds_state(name)]

    result: dict[str, list[tuple[Any, ...]]] = {}
    async with db.engine.connect() as conn:
        for name in await conn.run_sync(tables):
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()  # noqa: S608
            result[name] = sorted((tuple(row) for row in rows), key=repr)
    return result


async def rows_mentioning(db: Database, *needles: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each table in which any of ``needles`` appears (case-insensitive)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    lowered = [needle.lower() for needle in needles]
    for table, rows in (await snapshot(db)).items():
        hits = [row for row in rows if any(n in repr(row).lower() for n in lowered)]
        if hits:
            found[table] = hits
    return found
