"""The dashboard: the user's profile, tenant data, recent files and recent activity, each read
by its own workflow (``get_user_profile``, ``get_tenant_data``, ``get_recent_files``,
``get_recent_activity``), started in parallel and awaited within a per-part budget.

Each part is a field of its own: a part that fails or misses its budget becomes an error on
that field (null data) while the others answer — never a failed query. Successful parts are
cached per user and tenant for a short time (tag ``dashboard`` of the user, plus the part's
own tags), so a repeated dashboard starts no workflow; related mutations invalidate them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

import strawberry
from pydantic import BaseModel, ValidationError

from bffs.user.tasks import terminate_read
from bffs.user.types import TenantRef, User, dashboard_tag, user_tag
from contracts.context import RequestContext
from contracts.file import FileSummary, RecentFiles, RecentFilesInput
from contracts.names import WorkflowType
from contracts.tenant import GetTenantDataInput, TenantData
from contracts.user import (
    ActivityEntry,
    GetRecentActivityInput,
    GetUserProfileInput,
    RecentActivity,
    UserProfile,
)
from gateway_client import CacheKey, CacheScope, tag
from graph.context import BffDependencies
from graph.errors import ClientError, ErrorCode, from_workflow_error
from graph.tasks import spawn
from workflow_client.errors import WorkflowClientError, WorkflowFailed

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class DashboardConfig:
    """``deps.components.provide`` another one to change it (tests shorten budgets)."""

    # How long each part may take, from its start to its result.
    part_budget: timedelta = timedelta(seconds=2.5)
    cache_ttl_seconds: float = 15.0
    recent_files: int = 10
    recent_activity: int = 10
    # How long a mutation keeps invalidating the caches its workflow changes.
    invalidation_window_seconds: float = 60.0


def config_of(deps: BffDependencies) -> DashboardConfig:
    return deps.components.find(DashboardConfig) or DashboardConfig()


@dataclass(frozen=True)
class Part(Generic[M]):
    name: str
    workflow_type: WorkflowType
    result_type: type[M]
    input: Callable[[RequestContext, DashboardConfig], BaseModel]
    # Tags besides the user's dashboard tag (what else invalidates this part).
    tags: Callable[[RequestContext], list[str]]


PROFILE = Part(
    "profile",
    WorkflowType.GET_USER_PROFILE,
    UserProfile,
    lambda who, _config: GetUserProfileInput(user_id=who.user_id),
    lambda who: [user_tag(who, who.user_id)],
)
TENANT = Part(
    "tenant",
    WorkflowType.GET_TENANT_DATA,
    TenantData,
    lambda who, _config: GetTenantDataInput(tenant_id=who.tenant_id),
    lambda who: [tag(who, "tenant", CacheScope.TENANT)],
)
RECENT_FILES = Part(
    "recentFiles",
    WorkflowType.GET_RECENT_FILES,
    RecentFiles,
    lambda _who, config: RecentFilesInput(limit=config.recent_files),
    lambda who: [tag(who, "files", CacheScope.TENANT)],
)
RECENT_ACTIVITY = Part(
    "recentActivity",
    WorkflowType.GET_RECENT_ACTIVITY,
    RecentActivity,
    lambda who, config: GetRecentActivityInput(user_id=who.user_id, limit=config.recent_activity),
    lambda who: [tag(who, "activity")],
)
PARTS: tuple[Part[Any], ...] = (PROFILE, TENANT, RECENT_FILES, RECENT_ACTIVITY)


class DashboardParts:
    """The parts of one dashboard request. Each part's work starts when its field is
    resolved; GraphQL resolves the dashboard's fields concurrently, so every requested part
    runs in parallel (and a part nobody asked for starts no workflow)."""

    def __init__(self, deps: BffDependencies, who: RequestContext) -> None:
        self.deps = deps
        self.who = who
        self.config = config_of(deps)
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def result(self, part: Part[M]) -> M:
        task = self._tasks.get(part.name)
        if task is None:
            task = asyncio.create_task(self._load(part))
            # An unawaited failure (the client went away) is not worth a warning.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._tasks[part.name] = task
        return cast(M, await task)

    def _key(self, part: Part[M]) -> str:
        return str(CacheKey.build(f"dashboard.{part.name}", self.who))

    def _tags(self, part: Part[M]) -> list[str]:
        return [dashboard_tag(self.who), *part.tags(self.who)]

    async def _load(self, part: Part[M]) -> M:
        cache = self.deps.gateway.cache
        key = self._key(part)
        cached = await cache.get(key)
        if cached is not None:
            try:
                return part.result_type.model_validate_json(cached)
            except ValidationError:
                pass  # an entry of an older shape is a miss
        tags = self._tags(part)
        stamp = await cache.stamp(tags)
        started = time.perf_counter()
        try:
            value = await self._run(part)
        finally:
            self.deps.metrics.resolver_seconds.labels(
                self.deps.metrics.bff, f"dashboard.{part.name}"
            ).observe(time.perf_counter() - started)
        if stamp is not None:
            await cache.set(
                key,
                value.model_dump_json().encode(),
                self.config.cache_ttl_seconds,
                tags,
                stamp=stamp,
            )
        return value

    async def _run(self, part: Part[M]) -> M:
        budget = self.config.part_budget
        try:
            # The budget covers the wait for the result; the start and the final describe
            # get a little more, so a hung Temporal still ends this part.
            async with asyncio.timeout(budget.total_seconds() + 2.0):
                outcome = await self.deps.operations.execute(
                    self.who,
                    part.workflow_type.value,
                    part.input(self.who, self.config),
                    budget=budget,
                    result_type=part.result_type,
                )
        except TimeoutError as error:
            raise _late(part) from error
        except WorkflowFailed as error:
            self.deps.metrics.workflow_started(part.workflow_type.value)
            raise from_workflow_error(error) from error
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        self.deps.metrics.workflow_started(part.workflow_type.value)
        if outcome.result is None:
            spawn(
                self.deps,
                terminate_read(
                    self.deps, outcome.operation.id, f"dashboard part over its {budget} budget"
                ),
            )
            raise _late(part, outcome.operation.id)
        return outcome.result


def _late(part: Part[Any], operation_id: str | None = None) -> ClientError:
    extensions = {"operationId": operation_id} if operation_id else {}
    return ClientError(ErrorCode.UNAVAILABLE, f"{part.name} did not answer in time", **extensions)


# GraphQL types ---------------------------------------------------------------------------------


@strawberry.type
class DashboardQuotas:
    max_users: int
    storage_bytes: float


@strawberry.type
class DashboardTenant:
    """The caller's tenant as the dashboard shows it (``tenant`` reaches the Tenant entity)."""

    id: strawberry.ID
    name: str
    plan: str
    status: str
    member_count: int
    roles: list[str] = strawberry.field(description="The caller's roles in the tenant.")
    quotas: DashboardQuotas | None

    @strawberry.field
    def tenant(self) -> TenantRef:
        return TenantRef(id=self.id)

    @classmethod
    def of(cls, data: TenantData) -> DashboardTenant:
        quotas = data.quotas or data.tenant.quotas
        return cls(
            id=strawberry.ID(data.tenant.id),
            name=data.tenant.name,
            plan=data.plan.value,
            status=data.tenant.status.value,
            member_count=data.member_count,
            roles=list(data.roles),
            quotas=DashboardQuotas(
                max_users=quotas.max_users, storage_bytes=float(quotas.storage_bytes)
            )
            if quotas
            else None,
        )


@strawberry.type
class DashboardFile:
    id: strawberry.ID
    name: str
    content_type: str
    size_bytes: float
    status: str
    created_at: datetime
    has_thumbnail: bool
    owner_id: strawberry.Private[str]

    @strawberry.field
    def owner(self) -> User | None:
        return User.ref(self.owner_id)

    @classmethod
    def of(cls, file: FileSummary) -> DashboardFile:
        return cls(
            id=strawberry.ID(file.id),
            name=file.name,
            content_type=file.content_type,
            size_bytes=float(file.size_bytes),
            status=file.status.value,
            created_at=file.created_at,
            has_thumbnail=file.has_thumbnail,
            owner_id=file.owner_id,
        )


@strawberry.type
class UserActivityEntry:
    id: strawberry.ID
    kind: str
    summary: str
    at: datetime
    actor_id: strawberry.Private[str | None]

    @strawberry.field
    def actor(self) -> User | None:
        return User.ref(self.actor_id) if self.actor_id else None

    @classmethod
    def of(cls, entry: ActivityEntry) -> UserActivityEntry:
        return cls(
            id=strawberry.ID(entry.id),
            kind=entry.kind.value,
            summary=entry.summary,
            at=entry.at,
            actor_id=entry.actor_id,
        )


@strawberry.type(
    description="Each field is read on its own: one that fails or is too slow is null with an "
    "error at its path, the others still answer."
)
class Dashboard:
    parts: strawberry.Private[DashboardParts]

    @strawberry.field
    async def profile(self) -> User | None:
        return User.of(await self.parts.result(PROFILE))

    @strawberry.field
    async def tenant(self) -> DashboardTenant | None:
        return DashboardTenant.of(await self.parts.result(TENANT))

    @strawberry.field
    async def recent_files(self) -> list[DashboardFile] | None:
        files = await self.parts.result(RECENT_FILES)
        return [DashboardFile.of(file) for file in files.files]

    @strawberry.field
    async def recent_activity(self) -> list[UserActivityEntry] | None:
        activity = await self.parts.result(RECENT_ACTIVITY)
        return [UserActivityEntry.of(entry) for entry in activity.entries]
