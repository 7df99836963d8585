"""Helpers of the tenant service tests: the three services' runtimes, workers with stand-in
activities under the real names (Temporal's testing pattern), store snapshots."""

from __future__ import annotations

import asyncio
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext
from contracts.progress import ProgressEvent
from services.auth.store import metadata as auth_metadata
from services.common.db import Database
from services.common.dev_seed import USERS
from services.common.service import ServiceDefinition, ServiceRuntime
from services.tenant.store import metadata as tenant_metadata
from services.user.store import metadata as user_metadata
from tests.support.tables import holds_state
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

ALICE = USERS[0]  # acme owner/admin/member, globex member
BOB = USERS[1]  # globex owner/admin/member
OWNER = ("owner", "admin", "member")
ALICE_IN_ACME = RequestContext(user_id=ALICE.id, tenant_id="acme", roles=OWNER)
ALICE_IN_GLOBEX = RequestContext(user_id=ALICE.id, tenant_id="globex", roles=("member",))
BOB_IN_GLOBEX = RequestContext(user_id=BOB.id, tenant_id="globex", roles=OWNER)
PASSWORD = "dev-password-123"

StandIn = Callable[..., Any]


@dataclass
class Stack:
    """The auth, user and tenant services on one database, sharing one Temporal client."""

    settings: Settings
    runtimes: dict[str, ServiceRuntime]
    definitions: dict[str, ServiceDefinition]
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> ServiceRuntime:
        return self.runtimes["tenant"]

    @property
    def ops(self) -> WorkflowOperations:
        return self.tenant.operations

    @property
    def db(self) -> Database:
        return self.tenant.db

    def activities(self, name: str) -> list[Callable[..., Any]]:
        return list(self.definitions[name].activities(self.runtimes[name]))

    @asynccontextmanager
    async def workers(
        self, overrides: Mapping[str, StandIn] | None = None, *, services: tuple[str, ...] = ()
    ) -> AsyncIterator[None]:
        """Workers of the services (all three by default) on their real task queues, with
        each activity named in ``overrides`` replaced by its stand-in."""
        overrides = dict(overrides or {})
        async with AsyncExitStack() as stack:
            for name in services or tuple(self.runtimes):
                definition = self.definitions[name]
                activities = [overrides.pop(activity_name(fn), fn) for fn in self.activities(name)]
                worker = create_worker(
                    self.runtimes[name].client,
                    task_queue=definition.task_queue.value,
                    workflows=definition.workflows,
                    activities=activities,
                )
                await stack.enter_async_context(worker)
            assert not overrides, f"unknown activities: {list(overrides)}"
            yield


def activity_name(fn: Callable[..., Any]) -> str:
    name = activity._Definition.must_from_callable(fn).name
    assert name is not None
    return name


def real_activity(stack: Stack, name: str) -> Callable[..., Any]:
    for service in stack.runtimes:
        for fn in stack.activities(service):
            if activity_name(fn) == name:
                return fn
    raise KeyError(name)


def stand_in(
    stack: Stack,
    name: str,
    *,
    fail: bool = True,
    delay: float = 0.0,
    when: Callable[[dict[str, Any]], bool] = lambda _arg: True,
    calls: list[dict[str, Any]] | None = None,
) -> StandIn:
    """An activity under the real ``name``: for calls matching ``when`` it waits ``delay``
    and fails (non-retryable) when ``fail``; every other call runs the real activity."""
    real = real_activity(stack, name)
    input_type = next(
        value for key, value in typing.get_type_hints(real).items() if key != "return"
    )

    async def run(arg: dict[str, Any]) -> Any:
        if calls is not None:
            calls.append(arg)
        if when(arg):
            if delay:
                await asyncio.sleep(delay)
            if fail:
                raise ApplicationError(
                    "injected failure", type="ExternalServiceError", non_retryable=True
                )
        return await real(input_type.model_validate(arg))

    return activity.defn(name=name)(run)


METADATA: tuple[MetaData, ...] = (tenant_metadata, auth_metadata, user_metadata)
# Modification times are not content: a compensation puts values back, not clocks.
IGNORED_COLUMNS = frozenset({"updated_at"})
# An undone tenant's id stays retired for everyone but its maker (the takeover guard; its own
# tests are in test_store.py and tests/faults/test_tenant_ids.py).
IGNORED_TABLES = frozenset({"tenant_retired_ids"})


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the three services (one shared database)."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.transaction() as session:
        for metadata in METADATA:
            for table in metadata.sorted_tables:
                if table.name in IGNORED_TABLES or not holds_state(table.name):
                    continue
                key = list(table.primary_key.columns) or list(table.columns)
                rows = (await session.execute(select(table).order_by(*key))).mappings().all()
                found[table.name] = [
                    {k: v for k, v in row.items() if k not in IGNORED_COLUMNS} for row in rows
                ]
    return found


def bearer(
    settings: Settings, context: RequestContext, session_id: str | None = None
) -> dict[str, str]:
    token, _claims = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=session_id or uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


async def wait_for_event(
    ops: WorkflowOperations,
    context: RequestContext,
    operation_id: str,
    matches: Callable[[ProgressEvent], bool],
    *,
    within: float = 30,
) -> ProgressEvent:
    async with asyncio.timeout(within):
        while True:
            snapshot_ = await ops.progress(context, operation_id)
            for event in snapshot_.report.events:
                if matches(event):
                    return event
            await asyncio.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
