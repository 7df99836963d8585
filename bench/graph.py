"""The GraphQL the benchmark serves besides the product's BFFs.

``BENCH_SUBGRAPH`` is built with the product's BFF kit (``graph.runtime.Subgraph``: the same
schema builder, app factory, JWT context, permissions, limits, caches, metrics and error
masking as every BFF). Its fields stand in for BFF fields that do not exist yet:

- ``profile``: a profile read through the gateway client's read-through cache (what a BFF
  query answered from cache does); ``profileRedis`` the same with the Redis cache;
- ``aggregate``: the read workflows started in parallel (or one after another) through
  ``WorkflowOperations.execute``, the pattern of the user BFF's ``dashboard``;
- ``runOperation``: a mutation that starts one operation and waits for its result.

``plain_schema`` answers the same ``profile`` selection with constant data and nothing else:
the baseline a BFF's own cost is measured against.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import strawberry
from pydantic import BaseModel
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.types import Info

from contracts.context import RequestContext
from contracts.file import RecentFilesInput
from contracts.names import WorkflowType
from contracts.tenant import GetTenantDataInput
from contracts.user import GetRecentActivityInput, GetUserProfileInput
from gateway_client import GatewayClient, build_path, tag
from gateway_client.errors import GatewayError
from graph.context import GraphContext
from graph.errors import from_gateway_error, from_workflow_error
from graph.permissions import IsAuthenticated
from graph.runtime import Subgraph
from workflow_client.errors import WorkflowClientError
from workflow_client.models import ExecuteOutcome

PROFILE_TTL_SECONDS = 300.0
OPERATION_BUDGET = timedelta(seconds=30)

# The read workflows a dashboard aggregates, with the input each takes for the caller.
READ_INPUTS: dict[str, Callable[[RequestContext], BaseModel]] = {
    WorkflowType.GET_USER_PROFILE.value: lambda who: GetUserProfileInput(user_id=who.user_id),
    WorkflowType.GET_RECENT_ACTIVITY.value: lambda who: GetRecentActivityInput(user_id=who.user_id),
    WorkflowType.GET_TENANT_DATA.value: lambda who: GetTenantDataInput(tenant_id=who.tenant_id),
    WorkflowType.GET_RECENT_FILES.value: lambda who: RecentFilesInput(),
}

PROFILE_SELECTION = "userId email displayName locale timezone title tenantId roles status version"


@dataclass(frozen=True)
class RedisGateway:
    """The second gateway client (caching in Redis) behind ``profileRedis``, set by
    ``bench.procs`` when a Redis URL is given. A class of its own so that
    ``deps.components`` holds it apart from ``deps.gateway``."""

    client: GatewayClient


@strawberry.type
class Profile:
    user_id: strawberry.ID
    email: str
    display_name: str
    locale: str
    timezone: str
    title: str | None
    tenant_id: str | None
    roles: list[str]
    status: str
    version: int

    @classmethod
    def of(cls, data: dict[str, Any]) -> Profile:
        return cls(
            user_id=strawberry.ID(str(data["user_id"])),
            email=str(data["email"]),
            display_name=str(data["display_name"]),
            locale=str(data.get("locale", "en")),
            timezone=str(data.get("timezone", "UTC")),
            title=data.get("title"),
            tenant_id=data.get("tenant_id"),
            roles=[str(role) for role in data.get("roles", [])],
            status=str(data.get("status", "active")),
            version=int(data.get("version", 1)),
        )


@strawberry.type
class PartTiming:
    type: str
    ms: float
    completed: bool


@strawberry.type
class Aggregate:
    total_ms: float
    parts: list[PartTiming]


@strawberry.type
class OperationRun:
    id: strawberry.ID
    status: str
    completed: bool


async def _profile(info: Info[GraphContext, Any], gateway: GatewayClient, id: str) -> Profile:
    identity = await info.context.require_identity()
    try:
        data = await gateway.get_json(
            identity,
            build_path("/api/user/users/{user_id}", user_id=id),
            token=info.context.token,
            cache_ttl=PROFILE_TTL_SECONDS,
            tags=[tag(identity, "profile", user_id=id)],
            query_name="bench.profile",
            correlation_id=info.context.correlation_id,
        )
    except GatewayError as error:
        raise from_gateway_error(error) from error
    return Profile.of(data)


async def _run(info: Info[GraphContext, Any], who: RequestContext, type: str) -> PartTiming:
    started = time.perf_counter()
    try:
        outcome: ExecuteOutcome[Any] = await info.context.deps.operations.execute(
            who, type, READ_INPUTS[type](who), budget=OPERATION_BUDGET
        )
    except WorkflowClientError as error:
        raise from_workflow_error(error) from error
    info.context.deps.metrics.workflow_started(type)
    return PartTiming(
        type=type, ms=(time.perf_counter() - started) * 1000, completed=outcome.completed
    )


@strawberry.type
class BenchQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def profile(self, info: Info[GraphContext, Any], id: strawberry.ID) -> Profile:
        return await _profile(info, info.context.deps.gateway, str(id))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def profile_redis(self, info: Info[GraphContext, Any], id: strawberry.ID) -> Profile:
        redis = info.context.deps.components.get(RedisGateway)
        return await _profile(info, redis.client, str(id))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def aggregate(
        self, info: Info[GraphContext, Any], parts: list[str], parallel: bool = True
    ) -> Aggregate:
        who = await info.context.require_identity()
        started = time.perf_counter()
        if parallel:
            timings = list(await asyncio.gather(*(_run(info, who, part) for part in parts)))
        else:
            timings = [await _run(info, who, part) for part in parts]
        return Aggregate(total_ms=(time.perf_counter() - started) * 1000, parts=timings)


@strawberry.type
class BenchMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def run_operation(self, info: Info[GraphContext, Any], type: str) -> OperationRun:
        who = await info.context.require_identity()
        try:
            outcome: ExecuteOutcome[Any] = await info.context.deps.operations.execute(
                who, type, READ_INPUTS[type](who), budget=OPERATION_BUDGET
            )
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        info.context.deps.metrics.workflow_started(type)
        return OperationRun(
            id=strawberry.ID(outcome.operation.id),
            status=outcome.operation.status.value,
            completed=outcome.completed,
        )


BENCH_SUBGRAPH = Subgraph(name="bench", query=BenchQuery, mutation=BenchMutation)


# The plain baseline -------------------------------------------------------------------------

# Set by the benchmark (POST /configure on the plain process) to the profile the BFF returns.
CONSTANT_PROFILE: dict[str, Any] = {}


@strawberry.type
class PlainQuery:
    @strawberry.field
    async def profile(self, id: strawberry.ID) -> Profile:
        return Profile.of(CONSTANT_PROFILE)


def plain_schema(*, caches: bool) -> strawberry.Schema:
    """Plain Strawberry: no federation, no auth, no limits, no metrics. ``caches``: the same
    parser and validation caches the product's schemas use (without them, parsing and
    validation dominate)."""
    extensions: list[Callable[[], SchemaExtension]] = []
    if caches:
        extensions = [lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)]
    return strawberry.Schema(query=PlainQuery, extensions=extensions)
