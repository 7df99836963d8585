"""Every service serves /metrics: its requests by route template (never the raw path, so ids
do not explode the label set), method and status, their latency, and the process's own
resources."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adx.identity import TokenVerifier
from services.common.http import create_service_app


async def thing(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


async def test_a_service_counts_its_requests_by_route_template() -> None:
    app = create_service_app(
        "demo",
        [Route("/api/demo/things/{id}", thing, methods=["GET"])],
        verifier=TokenVerifier({"keys": []}, issuer="adx-core", audience="adx"),
        readiness={},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as http:
        for thing_id in ("a", "b", "c"):
            assert (await http.get(f"/api/demo/things/{thing_id}")).status_code == 200
        assert (await http.get("/api/demo/nothing")).status_code == 404
        metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    lines = metrics.text.splitlines()
    assert (
        'service_requests_total{method="GET",route="/api/demo/things/{id}",status="200"} 3.0'
        in lines
    )
    assert 'service_requests_total{method="GET",route="unmatched",status="404"} 1.0' in lines
    assert not [line for line in lines if "/things/a" in line]
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)
    assert any(line.startswith("service_request_seconds_bucket{") for line in lines)
