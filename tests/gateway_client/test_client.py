"""GatewayClient against a stand-in gateway over real HTTP: read-through cache and tag
invalidation, retries, timeouts, the circuit breaker, error mapping and forwarded headers."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from contracts.context import RequestContext
from contracts.errors import ErrorKind
from gateway_client import (
    FieldError,
    GatewayBadRequest,
    GatewayClient,
    GatewayConflict,
    GatewayError,
    GatewayForbidden,
    GatewayNotFound,
    GatewayRateLimited,
    GatewayServerError,
    GatewayUnauthorized,
    GatewayUnavailable,
    RedisCache,
    build_path,
    tag,
)
from tests.gateway_client.standin import (
    ALICE,
    BOB,
    PROBLEMS,
    LogRecorder,
    StandInGateway,
    make_client,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(60)

PROFILE = "/api/user/profile"


async def read_profile(client: GatewayClient, context: RequestContext = ALICE) -> object:
    return await client.get_json(
        context,
        PROFILE,
        token="tok-" + context.user_id,
        cache_ttl=60,
        tags=[tag(context, "profile")],
        query_name="user.profile",
    )


# Read-through cache ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_second_identical_read_is_served_from_the_cache(
    backend: str,
    gateway: StandInGateway,
    redis_cache: RedisCache,
    registry: CollectorRegistry,
    logs: LogRecorder,
) -> None:
    cache = redis_cache if backend == "redis" else None
    async with make_client(gateway, registry, logs, cache=cache) as client:
        first = await read_profile(client)
        second = await read_profile(client)
    assert first == second == {"version": 0, "served": 1, "params": {}}
    assert gateway.called("GET", PROFILE) == 1
    assert registry.get_sample_value("bff_cache_requests_total", {"result": "hit"}) == 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_mutation_invalidates_its_tags_and_the_next_read_goes_to_the_gateway(
    backend: str,
    gateway: StandInGateway,
    redis_cache: RedisCache,
    registry: CollectorRegistry,
    logs: LogRecorder,
) -> None:
    cache = redis_cache if backend == "redis" else None
    async with make_client(gateway, registry, logs, cache=cache) as client:
        assert await read_profile(client) == {"version": 0, "served": 1, "params": {}}
        await read_profile(client, BOB)
        assert gateway.called("GET", PROFILE) == 2

        updated = await client.send_json(
            ALICE,
            "PUT",
            PROFILE,
            token="tok-alice",
            json={"display_name": "Alice A."},
            invalidates=[tag(ALICE, "profile")],
        )
        assert updated == {"version": 1}
        assert gateway.bodies == [{"display_name": "Alice A."}]

        fresh = await read_profile(client)
        assert isinstance(fresh, dict)
        assert fresh["version"] == 1
        assert gateway.called("GET", PROFILE) == 3
        # Bob's entry had another tag: still cached.
        await read_profile(client, BOB)
        assert gateway.called("GET", PROFILE) == 3


async def test_a_rejected_mutation_invalidates_nothing(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    await read_profile(client)
    with pytest.raises(GatewayBadRequest):
        await client.send_json(
            ALICE,
            "PUT",
            PROFILE + "/invalid",
            token="t",
            json={"email": "nope"},
            invalidates=[tag(ALICE, "profile")],
        )
    await read_profile(client)
    assert gateway.called("GET", PROFILE) == 1


async def test_a_read_racing_a_mutation_does_not_store_its_stale_answer(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    profile_tag = tag(ALICE, "profile")

    async def gated_read() -> object:
        return await client.get_json(
            ALICE, "/api/gated/item", token="t", cache_ttl=60, tags=[profile_tag]
        )

    in_flight = asyncio.create_task(gated_read())
    async with asyncio.timeout(10):
        while gateway.called("GET", "/api/gated/item") == 0:
            await asyncio.sleep(0.01)
    # The read has been answered version 0 by the gateway but not yet returned: now the
    # mutation lands and invalidates.
    await client.send_json(ALICE, "PUT", PROFILE, token="t", json={}, invalidates=[profile_tag])
    gateway.gate.set()
    assert await in_flight == {"version": 0}

    assert await gated_read() == {"version": 1}
    assert gateway.called("GET", "/api/gated/item") == 2


async def test_errors_and_no_store_answers_are_not_cached(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    for _ in range(2):
        with pytest.raises(GatewayNotFound):
            await client.get_json(ALICE, "/api/problem/404", token="t", cache_ttl=60)
        assert await client.get_json(ALICE, "/api/user/no-store", token="t", cache_ttl=60) == {
            "fresh": True
        }
    assert gateway.called("GET", "/api/problem/404") == 2
    assert gateway.called("GET", "/api/user/no-store") == 2


async def test_reads_without_cache_ttl_always_reach_the_gateway(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    for _ in range(2):
        await client.get_json(ALICE, PROFILE, token="t", params={"q": "x"})
    assert gateway.called("GET", PROFILE) == 2


# Retries, timeouts, breaker --------------------------------------------------------------


async def test_a_get_failing_twice_with_503_then_succeeding_returns_the_data(
    client: GatewayClient, gateway: StandInGateway, registry: CollectorRegistry, logs: LogRecorder
) -> None:
    gateway.failures_left = 2
    assert await client.get_json(ALICE, "/api/flaky/item", token="secret-token") == {
        "ok": True,
        "method": "GET",
    }
    assert gateway.called("GET", "/api/flaky/item") == 3
    assert registry.get_sample_value("bff_gateway_retries_total", {"method": "GET"}) == 2
    assert [e["attempt"] for e in logs.named("gateway.retry")] == [1, 2]


async def test_a_get_failing_more_than_the_retries_raises_unavailable(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    gateway.failures_left = 10
    with pytest.raises(GatewayUnavailable) as caught:
        await client.get_json(ALICE, "/api/flaky/item", token="t")
    assert caught.value.status == 503
    assert caught.value.reason == "http"
    assert gateway.called("GET", "/api/flaky/item") == 3


async def test_a_post_failing_with_503_is_not_retried(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    gateway.failures_left = 1
    with pytest.raises(GatewayUnavailable):
        await client.send_json(ALICE, "POST", "/api/flaky/item", token="t", json={"n": 1})
    assert gateway.called("POST", "/api/flaky/item") == 1


async def test_a_post_with_an_idempotency_key_is_retried(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    gateway.failures_left = 2
    result = await client.send_json(
        ALICE, "POST", "/api/flaky/item", token="t", json={"n": 1}, idempotency_key="op-42"
    )
    assert result == {"ok": True, "method": "POST"}
    assert gateway.called("POST", "/api/flaky/item") == 3
    assert {h.get("idempotency-key") for h in gateway.headers} == {"op-42"}


async def test_a_long_retry_after_is_not_waited_for(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    """The real gateway answers 503 with Retry-After: 5 when a service is down: retrying
    sooner than that only adds load."""
    with pytest.raises(GatewayUnavailable) as caught:
        await client.get_json(ALICE, "/api/problem/503", token="t")
    assert caught.value.retry_after == 30
    assert caught.value.detail == "the user service is unavailable"
    assert gateway.called("GET", "/api/problem/503") == 1


async def test_a_timeout_raises_unavailable_after_the_retries(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    with pytest.raises(GatewayUnavailable) as caught:
        await client.get_json(ALICE, "/api/slow/item", token="t", request_timeout=0.2)
    assert caught.value.reason == "timeout"
    assert caught.value.status is None
    assert gateway.called("GET", "/api/slow/item") == 3


async def test_a_post_timing_out_is_not_retried(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    with pytest.raises(GatewayUnavailable) as caught:
        await client.send_json(
            ALICE, "POST", "/api/slow/item", token="t", json={}, request_timeout=0.2
        )
    assert caught.value.reason == "timeout"
    assert gateway.called("POST", "/api/slow/item") == 1


async def test_a_refused_connection_is_retried_even_for_a_post(logs: LogRecorder) -> None:
    """Connection refused: the request never left, so sending it again cannot repeat it."""
    registry = CollectorRegistry()
    async with GatewayClient(
        f"http://127.0.0.1:{free_port()}", registry=registry, logger=logs, backoff_seconds=0.001
    ) as client:
        with pytest.raises(GatewayUnavailable) as caught:
            await client.send_json(ALICE, "POST", "/api/x/y", token="t", json={})
    assert caught.value.reason == "connection"
    assert registry.get_sample_value("bff_gateway_retries_total", {"method": "POST"}) == 2
    assert (
        registry.get_sample_value(
            "bff_gateway_requests_total", {"method": "POST", "outcome": "connection"}
        )
        == 3
    )


async def test_repeated_failures_open_the_breaker_of_that_service_only(
    gateway: StandInGateway, registry: CollectorRegistry, logs: LogRecorder
) -> None:
    async with make_client(
        gateway, registry, logs, retries=0, breaker_threshold=3, breaker_cooldown_seconds=0.5
    ) as client:
        for _ in range(3):
            with pytest.raises(GatewayUnavailable) as caught:
                await client.get_json(ALICE, "/api/down/item", token="t")
            assert caught.value.reason == "http"
        with pytest.raises(GatewayUnavailable) as caught:
            await client.get_json(ALICE, "/api/down/item", token="t")
        assert caught.value.reason == "circuit_open"
        assert caught.value.retry_after is not None
        assert 0 < caught.value.retry_after <= 0.5
        assert gateway.called("GET", "/api/down/item") == 3  # failed fast, no call

        # Another service behind the gateway is not affected.
        await client.get_json(ALICE, PROFILE, token="t")
        assert gateway.called("GET", PROFILE) == 1

        # After the cool-down one probe goes through again.
        await asyncio.sleep(0.6)
        with pytest.raises(GatewayUnavailable) as caught:
            await client.get_json(ALICE, "/api/down/item", token="t")
        assert caught.value.reason == "http"
        assert gateway.called("GET", "/api/down/item") == 4
    assert any(e["state"] == "opened" for e in logs.named("gateway.circuit_changed"))


async def test_client_errors_do_not_open_the_breaker(
    gateway: StandInGateway, registry: CollectorRegistry, logs: LogRecorder
) -> None:
    async with make_client(gateway, registry, logs, retries=0, breaker_threshold=2) as client:
        for _ in range(4):
            with pytest.raises(GatewayNotFound):
                await client.get_json(ALICE, "/api/problem/404", token="t")
    assert gateway.called("GET", "/api/problem/404") == 4


async def test_cancelled_calls_do_not_open_the_breaker(
    gateway: StandInGateway, registry: CollectorRegistry, logs: LogRecorder
) -> None:
    """A caller going away (a closed subscription, a client disconnect) is not a gateway
    failure."""
    async with make_client(gateway, registry, logs, retries=0, breaker_threshold=2) as client:
        for started in range(3):
            task = asyncio.create_task(client.get_json(ALICE, "/api/slow/item", token="t"))
            async with asyncio.timeout(10):
                while gateway.called("GET", "/api/slow/item") == started:
                    await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        gateway.release.set()
        assert await client.get_json(ALICE, "/api/slow/item", token="t") == {"late": True}


# Error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (400, GatewayBadRequest, ErrorKind.VALIDATION),
        (401, GatewayUnauthorized, ErrorKind.AUTHENTICATION),
        (403, GatewayForbidden, ErrorKind.AUTHORIZATION),
        (404, GatewayNotFound, ErrorKind.NOT_FOUND),
        (409, GatewayConflict, ErrorKind.CONFLICT),
        (422, GatewayBadRequest, ErrorKind.VALIDATION),
        (429, GatewayRateLimited, None),
        (500, GatewayServerError, ErrorKind.INTERNAL),
    ],
)
async def test_problem_answers_become_typed_errors_with_their_fields(
    client: GatewayClient,
    gateway: StandInGateway,
    status: int,
    error_type: type[GatewayError],
    kind: ErrorKind | None,
) -> None:
    body, _headers = PROBLEMS[status]
    with pytest.raises(error_type) as caught:
        await client.get_json(ALICE, f"/api/problem/{status}", token="t")
    error = caught.value
    assert type(error) is error_type
    assert error.status == status
    assert error.title == body["title"]
    assert error.detail == body["detail"]
    assert error.type == body["type"]
    assert error.kind == kind
    assert str(error) == body["detail"]
    assert gateway.called("GET", f"/api/problem/{status}") == 1  # 4xx and 500: no retry


async def test_field_errors_retry_after_and_correlation_id_are_carried(
    client: GatewayClient,
) -> None:
    with pytest.raises(GatewayBadRequest) as invalid:
        await client.send_json(ALICE, "PUT", PROFILE + "/invalid", token="t", json={})
    assert invalid.value.errors == (
        FieldError("email", "value is not a valid email address"),
        FieldError("display_name", "String should have at most 80 characters"),
    )
    with pytest.raises(GatewayRateLimited) as limited:
        await client.get_json(ALICE, "/api/problem/429", token="t")
    assert limited.value.retry_after == 7
    with pytest.raises(GatewayNotFound) as missing:
        await client.get_json(ALICE, "/api/problem/404", token="t")
    assert missing.value.correlation_id == "corr-404"


async def test_an_error_page_is_never_echoed(client: GatewayClient) -> None:
    with pytest.raises(GatewayServerError) as caught:
        await client.get_json(ALICE, "/api/broken/html", token="t")
    assert caught.value.status == 500
    assert caught.value.detail is None
    assert "secret" not in str(caught.value)
    assert "secret" not in repr(caught.value)


async def test_a_success_that_is_not_json_is_a_server_error(client: GatewayClient) -> None:
    with pytest.raises(GatewayServerError, match="not JSON"):
        await client.get_json(ALICE, "/api/broken/text", token="t")


# Headers ---------------------------------------------------------------------------------


async def test_token_and_correlation_id_reach_the_gateway_and_the_token_is_not_logged(
    client: GatewayClient, gateway: StandInGateway, logs: LogRecorder
) -> None:
    gateway.failures_left = 1  # one retry, so the client logs something
    await client.get_json(ALICE, "/api/flaky/item", token="s3cr3t-jwt")
    await client.send_json(BOB, "DELETE", "/api/echo/item", token="bob-jwt", json=None)
    await client.send_json(None, "POST", "/api/echo/item", token=None, json={"a": 1})

    first, retried, bob, anonymous = gateway.headers
    assert first["authorization"] == retried["authorization"] == "Bearer s3cr3t-jwt"
    assert first["x-correlation-id"] == retried["x-correlation-id"] == "corr-alice-1"
    assert bob["authorization"] == "Bearer bob-jwt"
    assert bob["x-correlation-id"] == "c-bob"
    assert "authorization" not in anonymous
    assert "x-correlation-id" not in anonymous
    assert logs.events, "the retry was logged"
    assert "s3cr3t-jwt" not in repr(logs.events)


async def test_caller_headers_cannot_replace_the_token(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    await client.get_json(
        ALICE,
        PROFILE,
        token="real",
        headers={"Authorization": "Bearer forged", "X-Forwarded-For": "10.0.0.7"},
        correlation_id="override-1",
    )
    (seen,) = gateway.headers
    assert seen["authorization"] == "Bearer real"
    assert seen["x-forwarded-for"] == "10.0.0.7"
    assert seen["x-correlation-id"] == "override-1"


# Paths -----------------------------------------------------------------------------------


async def test_paths_stay_on_the_gateway(client: GatewayClient, gateway: StandInGateway) -> None:
    for bad in ("http://evil.example/x", "//evil.example/x", "api/user", "/api/user/../admin"):
        with pytest.raises(ValueError, match="path"):
            await client.get_json(ALICE, bad, token="t")
    assert sum(gateway.calls.values()) == 0


def test_build_path_encodes_each_value_as_one_segment() -> None:
    assert build_path("/api/user/users/{user_id}", user_id="a/b c") == "/api/user/users/a%2Fb%20c"
    for bad in ("..", ".", ""):
        with pytest.raises(ValueError, match="segment"):
            build_path("/api/user/users/{user_id}", user_id=bad)
