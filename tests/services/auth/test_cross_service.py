"""The auth activities called by name from other workflows (a tenant-switching saga, grants),
with the caller's identity propagated by Temporal headers: compensation and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts.auth import AuthActivity
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from services.auth.activities import AuthComponents, now_utc
from tests.services.auth import flows
from tests.services.auth.support import ALICE, BOB, bearer, login, unique_email
from tests.support.services import RunningService
from workflow_client.worker import create_worker

ALICE_IN_ACME = RequestContext(user_id=ALICE.id, tenant_id="acme", roles=("owner",))
BOB_IN_GLOBEX = RequestContext(user_id=BOB.id, tenant_id="globex", roles=("owner",))


@pytest.fixture(scope="module")
async def caller_queue(service: RunningService) -> AsyncIterator[str]:
    """Another service's worker: its workflows call auth activities on auth-task-queue."""
    queue = f"caller-{uuid.uuid4().hex[:8]}"
    worker = create_worker(
        service.runtime.client,
        task_queue=queue,
        workflows=flows.WORKFLOWS,
        activities=flows.ACTIVITIES,
    )
    async with worker:
        yield queue


async def run_as(
    client: Client,
    queue: str,
    context: RequestContext | None,
    workflow: str,
    arg: Any,
    result: type[Any],
) -> Any:
    with use_context(context):
        return await client.execute_workflow(
            workflow, arg, id=f"{workflow}-{uuid.uuid4().hex}", task_queue=queue, result_type=result
        )


async def call(
    service: RunningService, queue: str, context: RequestContext | None, name: str, payload: Any
) -> flows.CallOutcome:
    outcome: flows.CallOutcome = await run_as(
        service.runtime.client,
        queue,
        context,
        "auth_test_call",
        flows.CallInput(activity=name, payload=payload),
        flows.CallOutcome,
    )
    return outcome


def parts_of(service: RunningService) -> AuthComponents:
    parts = service.runtime.components.get(AuthComponents)
    return parts


async def test_switching_tenant_opens_a_new_session_and_ends_the_old_one(
    http: httpx.AsyncClient, service: RunningService, caller_queue: str
) -> None:
    old = await login(http, ALICE.email)
    result: flows.SwitchResult = await run_as(
        service.runtime.client,
        caller_queue,
        ALICE_IN_ACME,
        "auth_test_tenant_switch",
        flows.SwitchInput(session_id=old["session_id"], tenant_id="globex"),
        flows.SwitchResult,
    )
    exchanged = await http.post("/api/auth/sessions/exchange", json={"code": result.exchange_code})
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert tokens["session_id"] == result.session_id
    assert (tokens["tenant_id"], tokens["roles"]) == ("globex", ["member"])
    me = await http.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["tenant_id"] == "globex"
    ended = await http.get("/api/auth/me", headers=bearer(old["access_token"]))
    assert ended.status_code == 401
    twice = await http.post("/api/auth/sessions/exchange", json={"code": result.exchange_code})
    assert twice.status_code == 422


async def test_a_failed_switch_restores_the_old_session_and_removes_the_new_one(
    http: httpx.AsyncClient, service: RunningService, caller_queue: str
) -> None:
    old = await login(http, ALICE.email)
    before = {s.id for s in await parts_of(service).sessions.for_user(ALICE.id)}
    with pytest.raises(WorkflowFailureError) as failed:
        await run_as(
            service.runtime.client,
            caller_queue,
            ALICE_IN_ACME,
            "auth_test_tenant_switch",
            flows.SwitchInput(session_id=old["session_id"], tenant_id="globex", fail_loading=True),
            flows.SwitchResult,
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ErrorKind.EXTERNAL_SERVICE.value
    assert cause.details[0] == {"compensations": ["invalidate_session", "create_session"]}
    me = await http.get("/api/auth/me", headers=bearer(old["access_token"]))
    assert me.status_code == 200  # restored
    after = {s.id for s in await parts_of(service).sessions.for_user(ALICE.id)}
    assert after == before  # the new session is gone


async def test_a_switch_into_a_tenant_without_access_is_refused_before_any_change(
    http: httpx.AsyncClient, service: RunningService, caller_queue: str
) -> None:
    bobs = await login(http, BOB.email)
    before = await parts_of(service).sessions.for_user(BOB.id)
    with pytest.raises(WorkflowFailureError) as failed:
        await run_as(
            service.runtime.client,
            caller_queue,
            BOB_IN_GLOBEX,
            "auth_test_tenant_switch",
            flows.SwitchInput(session_id=bobs["session_id"], tenant_id="acme"),
            flows.SwitchResult,
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.message) == (ErrorKind.NOT_FOUND.value, "tenant not found")
    assert cause.details[0] == {"compensations": []}
    assert await parts_of(service).sessions.for_user(BOB.id) == before


async def test_cross_tenant_calls_are_refused_once_and_not_retried(
    http: httpx.AsyncClient, service: RunningService, caller_queue: str
) -> None:
    alices = await login(http, ALICE.email)
    # Bob (globex) cannot give anyone access to acme.
    grant = await call(
        service,
        caller_queue,
        BOB_IN_GLOBEX,
        AuthActivity.GRANT_TENANT_ACCESS,
        {"user_id": BOB.id, "tenant_id": "acme", "roles": ["owner"]},
    )
    assert grant.error_type == ErrorKind.TENANT_ISOLATION.value
    assert grant.error_message == "tenant not found"
    assert grant.non_retryable
    assert grant.retry_state == "NON_RETRYABLE_FAILURE"
    assert await parts_of(service).store.get_grant(BOB.id, "acme") is None
    # Nor end Alice's session.
    ended = await call(
        service,
        caller_queue,
        BOB_IN_GLOBEX,
        AuthActivity.INVALIDATE_SESSION,
        {"session_id": alices["session_id"]},
    )
    assert ended.error_type == ErrorKind.TENANT_ISOLATION.value
    assert (
        await http.get("/api/auth/me", headers=bearer(alices["access_token"]))
    ).status_code == 200
    # Nor read a user outside his tenant.
    newcomer = str(uuid.uuid4())
    await parts_of(service).store.seed_user(newcomer, unique_email("nia"), "x", now_utc())
    read = await call(
        service, caller_queue, BOB_IN_GLOBEX, AuthActivity.GET_USER, {"user_id": newcomer}
    )
    assert read.error_type == ErrorKind.TENANT_ISOLATION.value
    # Without an identity nothing is done at all.
    anonymous_call = await call(
        service,
        caller_queue,
        None,
        AuthActivity.GRANT_TENANT_ACCESS,
        {"user_id": newcomer, "tenant_id": "globex", "roles": ["member"]},
    )
    assert (anonymous_call.error_type, anonymous_call.non_retryable) == (
        ErrorKind.AUTHENTICATION.value,
        True,
    )
    # In his own tenant it works, and once is like twice.
    for _ in range(2):
        granted = await call(
            service,
            caller_queue,
            BOB_IN_GLOBEX,
            AuthActivity.GRANT_TENANT_ACCESS,
            {"user_id": newcomer, "tenant_id": "globex", "roles": ["member"]},
        )
        assert granted.result == {
            "user_id": newcomer,
            "tenant_id": "globex",
            "roles": ["member"],
            "status": "active",
        }
    assert [g.tenant_id for g in await parts_of(service).store.grants_for_user(newcomer)] == [
        "globex"
    ]


async def test_permission_checks_and_grants_for_other_services(
    service: RunningService, caller_queue: str
) -> None:
    allowed = await call(
        service,
        caller_queue,
        BOB_IN_GLOBEX,
        AuthActivity.CHECK_PERMISSIONS,
        {"permissions": ["members.manage", "tenant.billing"]},
    )
    assert allowed.result is not None
    assert (allowed.result["allowed"], allowed.result["roles"]) == (
        True,
        ["owner", "admin", "member"],
    )
    alice_in_globex = await call(
        service,
        caller_queue,
        BOB_IN_GLOBEX,
        AuthActivity.CHECK_PERMISSIONS,
        {"permissions": ["files.read", "tenant.delete"], "user_id": ALICE.id},
    )
    assert alice_in_globex.result is not None
    assert alice_in_globex.result["missing"] == ["tenant.delete"]
    denied = await call(
        service,
        caller_queue,
        RequestContext(user_id=ALICE.id, tenant_id="globex"),
        AuthActivity.CHECK_PERMISSIONS,
        {"permissions": ["tenant.delete"], "require": True},
    )
    assert (denied.error_type, denied.non_retryable) == (ErrorKind.AUTHORIZATION.value, True)
