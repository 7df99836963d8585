"""The user service's HTTP API (server mode), all under ``/api/user/`` with a bearer token.

A user of another tenant does not exist here (404); a member of the caller's tenant the caller
may not manage is 403. Profile changes, deactivation and bulk operations run as workflows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from temporalio.service import RPCError, RPCStatusCode

from adx.settings import Environment
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.names import SignalName, WorkflowType
from contracts.user import (
    ADMIN_ROLES,
    ActivityEntry,
    ActivityKind,
    BulkUserOperationInput,
    MembershipStatus,
    RecentActivity,
    RestoreUserSignal,
    UserDeactivationInput,
    UserId,
    UserProfile,
    UserProfileSyncInput,
    UserProfileSyncResult,
    UserStatus,
)
from services.common.email import EmailOutbox
from services.common.errors import NotFound, ServiceError, workflow_errors
from services.common.http import idempotency_key, identity, json, parse_body
from services.common.openapi import IDEMPOTENCY_KEY, Doc, Endpoint
from services.common.service import ServiceRuntime
from services.user.activities import is_admin
from services.user.models import (
    ActivityQuery,
    BulkRequest,
    DeactivateRequest,
    DirectoryEntry,
    DirectoryPage,
    DirectoryQuery,
    InvalidCursor,
    MembershipRow,
    OperationAccepted,
    Preferences,
    ProfileUpdate,
    encode_cursor,
)
from services.user.store import UserStore, email_outbox

QueryModel = TypeVar("QueryModel", bound=BaseModel)

# Most ids one ``GET /api/user/users?ids=`` may ask for (a page of GraphQL entities).
MAX_BATCH_IDS = 100

# How long PATCH waits for user_profile_sync before answering 202 with the operation.
PROFILE_SYNC_BUDGET = timedelta(seconds=10)


class UserIdsQuery(BaseModel):
    """``GET /api/user/users?ids=a,b,c``: comma-separated user ids (repeats count once)."""

    ids: list[UserId] = Field(min_length=1, max_length=MAX_BATCH_IDS)

    @field_validator("ids", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        return value


class UserBatch(BaseModel):
    """The profiles (as the caller's tenant sees them) of the requested users who are active
    members of the caller's tenant; any other id is absent."""

    items: list[UserProfile]


class UsersQueryDoc(DirectoryQuery):
    """The query ``GET /api/user/users`` reads: a directory search, or ``ids``."""

    ids: str | None = Field(default=None, description="comma-separated user ids", max_length=4000)


def _query(request: Request, model: type[QueryModel]) -> QueryModel:
    # Invalid parameters raise ValidationError: a 422 with field errors.
    return model.model_validate(dict(request.query_params))


class UserApi:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = UserStore(runtime.db)
        self.outbox = EmailOutbox(runtime.db, email_outbox, runtime.settings)

    def routes(self) -> Sequence[BaseRoute]:
        started = {202: OperationAccepted}
        return [
            Endpoint(
                "/api/user/me", self.me, "GET", Doc("the caller's profile", {200: UserProfile})
            ),
            Endpoint(
                "/api/user/users",
                self.search,
                "GET",
                Doc(
                    "the tenant's active members by name/email prefix, or those given by ids",
                    {200: DirectoryPage | UserBatch},
                    query=UsersQueryDoc,
                ),
            ),
            Endpoint(
                "/api/user/users/{user_id}",
                self.get_user,
                "GET",
                Doc("a member's profile", {200: UserProfile}),
            ),
            Endpoint(
                "/api/user/users/{user_id}",
                self.update_user,
                "PATCH",
                Doc(
                    "change a profile (user_profile_sync)",
                    {200: UserProfile, **started},
                    body=ProfileUpdate,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/user/users/{user_id}/deactivate",
                self.deactivate,
                "POST",
                Doc(
                    "deactivate a member, restorable within the grace period",
                    started,
                    body=DeactivateRequest,
                    errors=(403, 409),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Endpoint(
                "/api/user/users/{user_id}/restore",
                self.restore,
                "POST",
                Doc("restore a deactivated member (grace period)", started, errors=(403, 409)),
            ),
            Endpoint(
                "/api/user/preferences",
                self.get_preferences,
                "GET",
                Doc("the caller's preferences in its tenant", {200: Preferences}),
            ),
            Endpoint(
                "/api/user/preferences",
                self.put_preferences,
                "PUT",
                Doc("replace the caller's preferences", {200: Preferences}, body=Preferences),
            ),
            Endpoint(
                "/api/user/activity",
                self.activity,
                "GET",
                Doc("the caller's recent activity", {200: RecentActivity}, query=ActivityQuery),
            ),
            Endpoint(
                "/api/user/bulk",
                self.bulk,
                "POST",
                Doc(
                    "a bulk operation over members (admins)",
                    started,
                    body=BulkRequest,
                    errors=(403,),
                    headers=IDEMPOTENCY_KEY,
                ),
            ),
            Route("/dev/outbox", self.dev_outbox, methods=["GET"]),
        ]

    # Helpers --------------------------------------------------------------------------

    async def _member(
        self, context: RequestContext, user_id: str, *, active_only: bool = True
    ) -> MembershipRow:
        membership = await self.store.membership(user_id, context.tenant_id)
        if membership is None or (active_only and membership.status is not MembershipStatus.ACTIVE):
            raise NotFound("user")
        return membership

    async def _profile(self, membership: MembershipRow) -> UserProfile:
        profile = await self.store.get_profile(membership.user_id)
        if profile is None:
            raise NotFound("user")
        return profile.model_copy(
            update={"tenant_id": membership.tenant_id, "roles": list(membership.roles)}
        )

    async def _is_admin(self, context: RequestContext) -> bool:
        """An admin by the token and by the membership as stored now: a demotion counts at
        once, not when the caller's token is next refreshed."""
        if not is_admin(context):
            return False
        caller = await self.store.membership(context.user_id, context.tenant_id)
        return (
            caller is not None
            and caller.status is MembershipStatus.ACTIVE
            and not ADMIN_ROLES.isdisjoint(caller.roles)
        )

    async def _require_admin(self, context: RequestContext, what: str) -> None:
        if not await self._is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, f"only tenant admins can {what}")

    async def _start(
        self,
        request: Request,
        context: RequestContext,
        workflow_type: WorkflowType,
        input: BaseModel,
    ) -> JSONResponse:
        with workflow_errors():
            operation = await self.runtime.operations.start(
                context,
                workflow_type.value,
                input,
                request_key=idempotency_key(request),
            )
        return json(OperationAccepted(operation_id=operation.id), status=202)

    # Profiles -------------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        context = identity(request)
        return json(await self._profile(await self._member(context, context.user_id)))

    async def get_user(self, request: Request) -> Response:
        context = identity(request)
        membership = await self._member(context, request.path_params["user_id"])
        return json(await self._profile(membership))

    async def update_user(self, request: Request) -> Response:
        """Runs user_profile_sync: 200 with the profile when it finishes within the budget,
        else 202 with the operation to follow."""
        context = identity(request)
        user_id = request.path_params["user_id"]
        await self._member(context, user_id)
        if user_id != context.user_id and not await self._is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "you may not change this profile")
        changes = (await parse_body(request, ProfileUpdate)).changes()
        with workflow_errors():
            outcome = await self.runtime.operations.execute(
                context,
                WorkflowType.USER_PROFILE_SYNC.value,
                UserProfileSyncInput(user_id=user_id, changes=changes),
                budget=PROFILE_SYNC_BUDGET,
                result_type=UserProfileSyncResult,
                request_key=idempotency_key(request),
            )
        if outcome.result is None:
            return json(OperationAccepted(operation_id=outcome.operation.id), status=202)
        return json(outcome.result.profile)

    async def search(self, request: Request) -> Response:
        """Active members of the caller's tenant by name/email prefix, a page at a time; with
        ``ids``, those of the given users (one query, for BFF DataLoaders)."""
        context = identity(request)
        if "ids" in request.query_params:
            return await self._by_ids(context, _query(request, UserIdsQuery))
        query = _query(request, DirectoryQuery)
        try:
            after = query.cursor()
        except InvalidCursor as error:
            raise ServiceError(
                ErrorKind.VALIDATION, "invalid cursor", fields={"after": "invalid cursor"}
            ) from error
        rows = await self.store.search_directory(
            context.tenant_id, query.search, first=query.first, after=after
        )
        page = rows[: query.first]
        next_cursor = None
        if len(rows) > query.first:
            last = page[-1][0]
            next_cursor = encode_cursor(last.display_name.lower(), last.user_id)
        items = [
            DirectoryEntry(
                user_id=membership.user_id,
                display_name=membership.display_name,
                email=membership.email,
                roles=membership.roles,
                avatar_url=profile.avatar_url,
                title=profile.title,
            )
            for membership, profile in page
        ]
        return json(DirectoryPage(items=items, next_cursor=next_cursor))

    async def _by_ids(self, context: RequestContext, query: UserIdsQuery) -> Response:
        rows = await self.store.members_by_ids(context.tenant_id, query.ids)
        return json(
            UserBatch(
                items=[
                    profile.model_copy(
                        update={"tenant_id": membership.tenant_id, "roles": list(membership.roles)}
                    )
                    for membership, profile in rows
                ]
            )
        )

    # Preferences ----------------------------------------------------------------------

    async def get_preferences(self, request: Request) -> Response:
        context = identity(request)
        await self._member(context, context.user_id)
        document = await self.store.get_preferences(context.user_id, context.tenant_id)
        return json(Preferences() if document is None else Preferences.model_validate(document))

    async def put_preferences(self, request: Request) -> Response:
        context = identity(request)
        await self._member(context, context.user_id)
        preferences = await parse_body(request, Preferences)
        await self.store.put_preferences(
            context.user_id,
            context.tenant_id,
            preferences.model_dump(mode="json"),
            ActivityEntry(
                id=str(uuid.uuid4()),
                tenant_id=context.tenant_id,
                user_id=context.user_id,
                actor_id=context.user_id,
                kind=ActivityKind.PREFERENCES_UPDATED,
                summary="preferences updated",
                at=datetime.now(UTC),
            ),
        )
        return json(preferences)

    # Activity -------------------------------------------------------------------------

    async def activity(self, request: Request) -> Response:
        context = identity(request)
        query = _query(request, ActivityQuery)
        await self._member(context, context.user_id)
        entries = await self.store.recent_activity(context.tenant_id, context.user_id, query.limit)
        return json(RecentActivity(user_id=context.user_id, entries=entries))

    # Operations -----------------------------------------------------------------------

    async def deactivate(self, request: Request) -> Response:
        context = identity(request)
        user_id = request.path_params["user_id"]
        membership = await self._member(context, user_id, active_only=False)
        await self._require_admin(context, "deactivate users")
        if user_id == context.user_id:
            raise ServiceError(ErrorKind.CONFLICT, "you cannot deactivate yourself")
        # A client repeating its request (same Idempotency-Key) gets the same operation, though
        # the user it deactivated is deactivated now.
        with workflow_errors():
            repeated = await self.runtime.operations.keyed(
                context, WorkflowType.USER_DEACTIVATION.value, idempotency_key(request)
            )
        if repeated is not None:
            return json(OperationAccepted(operation_id=repeated.id), status=202)
        profile = await self._profile(membership)
        if profile.status is UserStatus.DEACTIVATED:
            raise ServiceError(ErrorKind.CONFLICT, "the user is already deactivated")
        body = await parse_body(request, DeactivateRequest)
        return await self._start(
            request,
            context,
            WorkflowType.USER_DEACTIVATION,
            UserDeactivationInput(
                user_id=user_id,
                tenant_id=context.tenant_id,
                grace_period_seconds=body.grace_period_seconds,
                reason=body.reason,
            ),
        )

    async def restore(self, request: Request) -> Response:
        """Signals the user's deactivation workflow, within its grace period, from the
        tenant that started it."""
        context = identity(request)
        user_id = request.path_params["user_id"]
        membership = await self._member(context, user_id, active_only=False)
        await self._require_admin(context, "restore users")
        profile = await self._profile(membership)
        operation_id = await self.store.deactivation_operation(user_id)
        if profile.status is not UserStatus.DEACTIVATED or operation_id is None:
            raise ServiceError(ErrorKind.CONFLICT, "the user is not deactivated")
        deadline = profile.restore_deadline
        if deadline is not None and deadline <= datetime.now(UTC):
            raise ServiceError(ErrorKind.CONFLICT, "the grace period is over")
        with workflow_errors():
            operation = await self.runtime.operations.describe(context, operation_id)
        if operation.status.is_terminal:
            raise ServiceError(ErrorKind.CONFLICT, "the grace period is over")
        handle = self.runtime.operations.client.get_workflow_handle(operation_id)
        try:
            with use_context(context):
                await handle.signal(
                    SignalName.RESTORE_USER.value, RestoreUserSignal(requested_by=context.user_id)
                )
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise ServiceError(ErrorKind.CONFLICT, "the grace period is over") from error
            raise ServiceError(
                ErrorKind.EXTERNAL_SERVICE, "the workflow service is unavailable"
            ) from error
        return json(OperationAccepted(operation_id=operation_id), status=202)

    async def bulk(self, request: Request) -> Response:
        context = identity(request)
        await self._require_admin(context, "run bulk operations")
        body = await parse_body(request, BulkRequest)
        input = BulkUserOperationInput(
            tenant_id=context.tenant_id,
            action=body.action,
            user_ids=body.user_ids,
            locale=body.locale,
        )
        return await self._start(request, context, WorkflowType.BULK_USER_OPERATION, input)

    # Development ----------------------------------------------------------------------

    async def dev_outbox(self, request: Request) -> Response:
        """Recent emails of this service (dev only: without SMTP they stay here)."""
        if self.runtime.settings.environment is not Environment.DEV:
            raise NotFound("page")
        to = request.query_params.get("to")
        return json(await self.outbox.recent(limit=50, to=to))


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return UserApi(runtime).routes()
