"""The API gateway against the real user service and the real Temporal dev server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contracts.auth import UserStatus
from contracts.user import BulkAction
from tests.gateway.conftest import ALICE, AUTH, BOB, Stack


async def wait_status(
    http: httpx.AsyncClient, stack: Stack, operation_id: str, wanted: str
) -> dict[str, Any]:
    for _ in range(200):
        body: dict[str, Any] = (
            await http.get(
                f"{stack.gateway}/api/workflows/{operation_id}/status", headers=stack.headers()
            )
        ).json()
        if body["status"] == wanted:
            return body
        await asyncio.sleep(0.05)
    result = (
        await http.get(
            f"{stack.gateway}/api/workflows/{operation_id}/result", headers=stack.headers()
        )
    ).json()
    raise AssertionError(f"{operation_id} never reached {wanted}: {body} {result}")


async def test_direct_route_is_proxied_with_identity_and_correlation(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        f"{stack.gateway}/api/user/me", headers=stack.headers(extra={"X-Correlation-ID": "corr-1"})
    )
    assert response.status_code == 200
    assert response.json()["email"] == "alice@acme.test"
    assert response.headers["x-correlation-id"] == "corr-1"


async def test_a_get_with_a_body_is_answered_by_the_service(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """The body of a GET is not forwarded, nor its length (found by schemathesis: the
    service waited for a body that never came and the gateway answered 500)."""
    headers = stack.headers(extra={"Content-Type": "application/json"})
    read = await http.request(
        "GET", f"{stack.gateway}/api/user/me", headers=headers, content=b'{"x": 1}'
    )
    assert read.status_code == 200
    assert read.json()["email"] == "alice@acme.test"
    wrong_method = await http.request(
        "GET", f"{stack.gateway}/api/user/bulk", headers=headers, content=b'{"action": "x"}'
    )
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["title"] == "Method Not Allowed"


async def test_a_path_with_encoded_control_characters_reaches_the_service(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """The path is forwarded as sent, still percent-encoded (found by schemathesis: the
    decoded one held a control character no URL can carry, and the gateway answered 500)."""
    odd = await http.get(f"{stack.gateway}/api/user/users/x%17%C3%B0", headers=stack.headers())
    assert odd.status_code == 404
    assert odd.json()["detail"] == "user not found"
    search = await http.get(
        f"{stack.gateway}/api/user/users?search=ali%26ce&first=5", headers=stack.headers()
    )
    assert search.status_code == 200


async def test_errors_are_problem_json(stack: Stack, http: httpx.AsyncClient) -> None:
    unknown = await http.get(f"{stack.gateway}/api/nothing/here", headers=stack.headers())
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "correlation_id"} <= set(unknown.json())
    forged = await http.get(
        f"{stack.gateway}/api/user/me", headers={"Authorization": "Bearer not.a.token"}
    )
    assert forged.status_code == 401
    assert forged.json()["status"] == 401
    anonymous = await http.post(f"{stack.gateway}/api/workflows/get_user_profile", json={})
    assert anonymous.status_code == 401


async def test_synchronous_workflow_answers_with_its_result(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        f"{stack.gateway}/api/workflows/get_user_profile",
        json={"user_id": ALICE.user_id},
        headers=stack.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["result"]["email"] == "alice@acme.test"
    assert body["operation_id"].startswith("get_user_profile-")


async def test_invalid_input_is_a_422_with_fields_and_starts_nothing(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    before = (
        await http.get(
            f"{stack.gateway}/api/workflows?type=bulk_user_operation", headers=stack.headers()
        )
    ).json()
    response = await http.post(
        f"{stack.gateway}/api/workflows/bulk_user_operation",
        json={"tenant_id": "acme", "action": "explode", "user_ids": []},
        headers=stack.headers(),
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"action", "user_ids"} <= fields
    after = (
        await http.get(
            f"{stack.gateway}/api/workflows?type=bulk_user_operation", headers=stack.headers()
        )
    ).json()
    assert len(after["operations"]) == len(before["operations"])
    unknown = await http.post(
        f"{stack.gateway}/api/workflows/launch_rockets", json={}, headers=stack.headers()
    )
    assert unknown.status_code == 404


async def test_asynchronous_workflow_gives_links_and_idempotency_key_dedupes(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    payload = {
        "tenant_id": "acme",
        "action": BulkAction.UPDATE_LOCALE.value,
        "locale": "de",
        "user_ids": [ALICE.user_id],
    }
    headers = stack.headers(extra={"Idempotency-Key": "bulk-once"})
    first = await http.post(
        f"{stack.gateway}/api/workflows/bulk_user_operation", json=payload, headers=headers
    )
    assert first.status_code == 202, first.text
    body = first.json()
    operation_id = body["operation_id"]
    assert body["status_url"] == f"/api/workflows/{operation_id}/status"
    assert body["stream_url"] == f"/api/workflows/{operation_id}/stream"
    assert body["cancel_url"] == f"/api/workflows/{operation_id}/cancel"
    again = await http.post(
        f"{stack.gateway}/api/workflows/bulk_user_operation", json=payload, headers=headers
    )
    assert again.json()["operation_id"] == operation_id
    await wait_status(http, stack, operation_id, "COMPLETED")
    result = await http.get(f"{stack.gateway}{body['result_url']}", headers=stack.headers())
    assert result.status_code == 200
    assert result.json()["result"]["total"] == 1


async def test_cancel_shows_canceled_and_the_compensation_ran(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    AUTH.calls.clear()
    started = await http.post(
        f"{stack.gateway}/api/workflows/user_deactivation",
        json={"user_id": ALICE.user_id, "tenant_id": "acme", "grace_period_seconds": 3600},
        headers=stack.headers(),
    )
    assert started.status_code == 202, started.text
    operation_id = started.json()["operation_id"]
    # Wait until the user is deactivated (sessions revoked), then cancel.
    for _ in range(200):
        if AUTH.calls:
            break
        await asyncio.sleep(0.05)
    assert AUTH.calls[0][:2] == (ALICE.user_id, UserStatus.DEACTIVATED)
    # Deactivated: her memberships are suspended, so the directory no longer shows her.
    hidden = await http.get(
        f"{stack.gateway}/api/user/users/{ALICE.user_id}", headers=stack.headers()
    )
    assert hidden.status_code == 404
    cancel = await http.post(
        f"{stack.gateway}/api/workflows/{operation_id}/cancel",
        json={"reason": "mistake"},
        headers=stack.headers(),
    )
    assert cancel.status_code == 202
    status = await wait_status(http, stack, operation_id, "CANCELED")
    assert status["progress"]["completed"] >= 1
    events = (
        await http.get(
            f"{stack.gateway}/api/workflows/{operation_id}/status?after_offset=0",
            headers=stack.headers(),
        )
    ).json()["events"]
    assert any(e["kind"] == "compensation_completed" for e in events)
    restored = (
        await http.get(f"{stack.gateway}/api/user/users/{ALICE.user_id}", headers=stack.headers())
    ).json()
    assert restored["status"] == "active"


async def test_another_tenants_operation_is_not_found(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    started = await http.post(
        f"{stack.gateway}/api/workflows/get_user_profile",
        json={"user_id": ALICE.user_id},
        headers=stack.headers(),
    )
    operation_id = started.json()["operation_id"]
    for path in ("status", "result"):
        response = await http.get(
            f"{stack.gateway}/api/workflows/{operation_id}/{path}", headers=stack.headers(BOB)
        )
        assert response.status_code == 404
    for path in ("cancel", "retry"):
        response = await http.post(
            f"{stack.gateway}/api/workflows/{operation_id}/{path}", headers=stack.headers(BOB)
        )
        assert response.status_code == 404
    listed = (await http.get(f"{stack.gateway}/api/workflows", headers=stack.headers(BOB))).json()
    assert operation_id not in {op["id"] for op in listed["operations"]}


async def test_retry_of_a_failed_operation(stack: Stack, http: httpx.AsyncClient) -> None:
    # A profile read of a user the tenant does not have fails (isolation: not found).
    started = await http.post(
        f"{stack.gateway}/api/workflows/get_user_profile",
        json={"user_id": BOB.user_id},
        headers=stack.headers(),
    )
    assert started.status_code == 404, started.text
    operation_id = started.json()["operation_id"]
    await wait_status(http, stack, operation_id, "FAILED")
    retried = await http.post(
        f"{stack.gateway}/api/workflows/{operation_id}/retry", headers=stack.headers()
    )
    assert retried.status_code == 202
    new_id = retried.json()["operation_id"]
    assert new_id != operation_id
    status = await wait_status(http, stack, new_id, "FAILED")
    assert status["retry_of"] == operation_id


async def test_list_filters_by_type_and_status_with_pages(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        response = await http.post(
            f"{stack.gateway}/api/workflows/get_recent_activity",
            json={"user_id": ALICE.user_id},
            headers=stack.headers(),
        )
        assert response.status_code == 200
    seen: set[str] = set()
    for _ in range(100):
        seen = set()
        token = None
        while True:
            query = "type=get_recent_activity&status=COMPLETED&page_size=2"
            if token:
                query += f"&page_token={token}"
            page = (
                await http.get(f"{stack.gateway}/api/workflows?{query}", headers=stack.headers())
            ).json()
            assert len(page["operations"]) <= 2
            seen |= {op["id"] for op in page["operations"]}
            assert all(op["workflow_type"] == "get_recent_activity" for op in page["operations"])
            token = page["next_page_token"]
            if not token:
                break
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(seen) >= 3
    bad = await http.get(f"{stack.gateway}/api/workflows?page_size=1000", headers=stack.headers())
    assert bad.status_code == 422


async def test_metrics_and_openapi(stack: Stack, http: httpx.AsyncClient) -> None:
    await http.get(f"{stack.gateway}/api/user/me", headers=stack.headers())
    metrics = (await http.get(f"{stack.gateway}/metrics")).text
    assert (
        'gateway_requests_total{method="GET",route="/api/{service}/{path:path}",status="200"}'
        in metrics
    )
    document = (await http.get(f"{stack.gateway}/openapi.json")).json()
    assert "/api/workflows/bulk_user_operation" in document["paths"]
    assert "/api/workflows/{id}/status" in document["paths"]
    assert "BulkUserOperationInput" in document["components"]["schemas"]
