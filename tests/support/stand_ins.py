"""Stand-in activities under the real names on the real task queues (Temporal's testing
pattern), for stacks that run a service's workflows without the service they call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.auth import (
    AccountStatusChange,
    AuthActivity,
    AuthUser,
    GetUserInput,
    RevokedSessions,
    RevokeUserSessionsInput,
    SetAccountStatusInput,
    UserStatus,
)
from contracts.context import current_context


class AuthStandIn:
    """Stands in for the auth service's account activities (Temporal's testing pattern:
    activities registered under the real names on the real task queue). ``calls`` lists the
    account status changes asked for, with the caller's tenant."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, UserStatus, str | None]] = []
        self.statuses: dict[str, UserStatus] = {}
        self.revoked: list[str] = []
        self.fail_with: str | None = None

    @activity.defn(name=AuthActivity.GET_USER)
    async def get_user(self, input: GetUserInput) -> AuthUser:
        status = self.statuses.get(input.user_id, UserStatus.ACTIVE)
        return AuthUser(id=input.user_id, email=f"{input.user_id}@example.test", status=status)

    @activity.defn(name=AuthActivity.SET_ACCOUNT_STATUS)
    async def set_account_status(self, input: SetAccountStatusInput) -> AccountStatusChange:
        context = current_context()
        self.calls.append((input.user_id, input.status, context.tenant_id if context else None))
        if self.fail_with is not None:
            raise ApplicationError(self.fail_with, type="ExternalServiceError", non_retryable=True)
        before = self.statuses.get(input.user_id, UserStatus.ACTIVE)
        self.statuses[input.user_id] = input.status
        return AccountStatusChange(
            user_id=input.user_id, status=input.status, changed=before is not input.status
        )

    @activity.defn(name=AuthActivity.REVOKE_USER_SESSIONS)
    async def revoke_user_sessions(self, input: RevokeUserSessionsInput) -> RevokedSessions:
        self.revoked.append(input.user_id)
        return RevokedSessions(user_id=input.user_id, count=0)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.get_user, self.set_account_status, self.revoke_user_sessions]
