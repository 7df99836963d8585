"""User subgraph: ``dashboard``, ``user``, ``users``, ``preferences``; ``updatePreferences``,
``onboardUser``, ``deactivateUser``. Owns the User entity.

Reads go through the gateway with the cache (tenant-scoped entries tagged per user and per
tenant directory); the dashboard aggregates four read workflows; long changes start a
workflow and return its Operation at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from pydantic import ValidationError
from strawberry.types import Info

from bffs.user.dashboard import Dashboard, DashboardParts, config_of
from bffs.user.tasks import invalidate_while_running
from bffs.user.types import (
    OnboardUserInput,
    Preferences,
    PreferencesData,
    PreferencesInput,
    TenantRef,
    User,
    dashboard_tag,
    directory_tag,
    fetch_directory,
    fetch_preferences,
    invalid_input,
    load_user,
    preferences_tag,
    user_from_entry,
    user_tag,
)
from contracts.context import RequestContext
from contracts.names import WorkflowType
from contracts.workflow import UserOnboardingInput
from gateway_client import GatewayError, build_path
from graph.context import GraphContext
from graph.errors import from_gateway_error, from_workflow_error, not_found
from graph.permissions import IsAuthenticated, IsTenantAdmin
from graph.runtime import Subgraph
from graph.tasks import spawn
from graph.types import Connection, Edge, OperationRef, PageInfo, page_size
from workflow_client.errors import WorkflowClientError

RequestKey = Annotated[
    str | None, strawberry.argument(description="The same key returns the same operation.")
]


def _watch(context: GraphContext, who: RequestContext, operation_id: str, tags: list[str]) -> None:
    """Keeps invalidating ``tags`` while the started workflow makes its changes."""
    deps = context.deps
    spawn(
        deps,
        invalidate_while_running(
            deps,
            who,
            operation_id,
            tags,
            window_seconds=config_of(deps).invalidation_window_seconds,
        ),
    )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def dashboard(self, info: Info[GraphContext, Any]) -> Dashboard:
        who = await info.context.require_identity()
        return Dashboard(parts=DashboardParts(info.context.deps, who))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A member of the caller's tenant (anyone else: NOT_FOUND).",
    )
    async def user(self, info: Info[GraphContext, Any], id: strawberry.ID) -> User | None:
        return User.of(await load_user(info.context, str(id)))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Active members of the caller's tenant whose name or email starts with "
        "``search``, by name.",
    )
    async def users(
        self,
        info: Info[GraphContext, Any],
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[User]:
        page = await fetch_directory(info.context, search or "", page_size(first), after)
        cursor = page.next_cursor or ""
        return Connection(
            edges=[Edge(cursor=cursor, node=user_from_entry(entry)) for entry in page.items],
            page_info=PageInfo(
                has_next_page=page.next_cursor is not None, end_cursor=page.next_cursor
            ),
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def preferences(self, info: Info[GraphContext, Any]) -> Preferences:
        return Preferences.of(await fetch_preferences(info.context))


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_preferences(
        self, info: Info[GraphContext, Any], input: PreferencesInput
    ) -> Preferences:
        context = info.context
        who = await context.require_identity()
        current = await fetch_preferences(context, cached=False)
        try:
            saved = await context.deps.gateway.send_json(
                who,
                "PUT",
                "/api/user/preferences",
                token=context.token,
                json=input.apply_to(current),
                # The change is also a new activity entry: the dashboard shows it.
                invalidates=[preferences_tag(who), dashboard_tag(who)],
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        return Preferences.of(PreferencesData.model_validate(saved))

    @strawberry.mutation(
        permission_classes=[IsTenantAdmin],
        description="Starts user_deactivation (grace period, then final); returns at once.",
    )
    async def deactivate_user(
        self,
        info: Info[GraphContext, Any],
        id: strawberry.ID,
        grace_period_seconds: int | None = None,
        reason: str | None = None,
        request_key: RequestKey = None,
    ) -> OperationRef:
        context = info.context
        who = await context.require_identity()
        user_id = str(id)
        body: dict[str, Any] = {}
        if grace_period_seconds is not None:
            body["grace_period_seconds"] = grace_period_seconds
        if reason is not None:
            body["reason"] = reason
        tags = [
            user_tag(who, user_id),
            dashboard_tag(who, user_id),
            preferences_tag(who, user_id),
            directory_tag(who),
        ]
        try:
            path = build_path("/api/user/users/{user_id}/deactivate", user_id=user_id)
        except ValueError as error:
            raise not_found("user") from error
        try:
            accepted = await context.deps.gateway.send_json(
                who,
                "POST",
                path,
                token=context.token,
                json=body,
                idempotency_key=request_key,
                invalidates=tags,
            )
        except GatewayError as error:
            raise from_gateway_error(error) from error
        operation_id = str(accepted["operation_id"])
        context.deps.metrics.workflow_started(WorkflowType.USER_DEACTIVATION.value)
        _watch(context, who, operation_id, tags)
        return OperationRef.of(operation_id)

    @strawberry.mutation(
        permission_classes=[IsTenantAdmin],
        description="Starts user_onboarding in the caller's tenant (invitation, profile, "
        "membership); returns at once.",
    )
    async def onboard_user(
        self,
        info: Info[GraphContext, Any],
        input: OnboardUserInput,
        request_key: RequestKey = None,
    ) -> OperationRef:
        context = info.context
        who = await context.require_identity()
        values: dict[str, Any] = {
            "email": input.email,
            "display_name": input.display_name,
            "tenant_id": who.tenant_id,
        }
        optional = {
            "roles": input.roles,
            "locale": input.locale,
            "timezone": input.timezone,
            "tenant_name": input.tenant_name,
        }
        values.update({name: value for name, value in optional.items() if value is not None})
        try:
            workflow_input = UserOnboardingInput.model_validate(values)
        except ValidationError as error:
            raise invalid_input(error) from error
        try:
            operation = await context.deps.operations.start(
                who,
                WorkflowType.USER_ONBOARDING.value,
                workflow_input,
                request_key=request_key,
            )
        except WorkflowClientError as error:
            raise from_workflow_error(error) from error
        context.deps.metrics.workflow_started(WorkflowType.USER_ONBOARDING.value)
        _watch(context, who, operation.id, [directory_tag(who)])
        return OperationRef.of(operation)


SUBGRAPH = Subgraph(name="user", query=Query, mutation=Mutation, types=(TenantRef,))
