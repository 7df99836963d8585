"""The gateway's ``/openapi.json``: its own routes plus every service's proxied routes, taken
from the services' documents over real HTTP; a service that is down keeps its last document."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adx.settings import Settings
from gateway.service_docs import ServiceDocuments, merge
from gateway.upstreams import SERVICES, Upstreams
from tests.gateway.conftest import Stack
from tests.support.http import serve_app
from tests.support.schemathesis import references


async def test_the_document_holds_the_services_routes(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{stack.gateway}/openapi.json")).json()
        service_document = (await http.get(f"{stack.user_service}/openapi.json")).json()

    paths = document["paths"]
    # The gateway's own routes and the user service's, at the path the gateway proxies.
    assert "/api/workflows/{id}/status" in paths
    profile = paths["/api/user/users/{user_id}"]["get"]
    assert profile["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/user.UserProfile"
    }
    assert {"401", "404", "429", "502", "503"} <= set(profile["responses"])
    assert profile["tags"] == ["user"]
    update = paths["/api/user/users/{user_id}"]["patch"]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/user.ProfileUpdate"
    }
    assert {p["name"] for p in update["parameters"]} == {"user_id", "Idempotency-Key"}
    search = paths["/api/user/users"]["get"]
    assert {p["name"] for p in search["parameters"]} == {"search", "first", "after", "ids"}

    # Every operation the service documents under /api/user/ is there, and nothing else of it.
    service_paths = {p for p in service_document["paths"] if p.startswith("/api/user/")}
    assert service_paths == {p for p in paths if p.startswith("/api/user/")}
    # Every reference resolves; operation ids are unique across gateway and services.
    schemas = document["components"]["schemas"]
    for ref in set(references(document)):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    operation_ids = [
        operation["operationId"] for item in paths.values() for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    # This stack runs only the user service: the others are named, not silently missing.
    assert set(document["x-unavailable-services"]) == set(SERVICES) - {"user"}


async def test_a_service_that_goes_down_keeps_its_last_document(settings: Settings) -> None:
    served = {
        "openapi": "3.1.0",
        "info": {"title": "tenant", "version": "1"},
        "paths": {
            "/api/tenant/things": {"get": {"operationId": "get_things", "responses": {}}},
            "/healthz": {"get": {"operationId": "healthz", "responses": {}}},
        },
        "components": {"schemas": {"Thing": {"type": "object"}}},
    }

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(served)

    app = Starlette(routes=[Route("/openapi.json", openapi)])
    gateway_document = {"openapi": "3.1.0", "paths": {}, "components": {"schemas": {}}}
    async with httpx.AsyncClient() as http:
        async with serve_app(app) as url:
            upstreams = Upstreams(
                settings.model_copy(update={"gateway_upstreams": {"tenant": [url]}}), http
            )
            documents = ServiceDocuments(upstreams, http, max_age_seconds=0)
            first = merge(gateway_document, await documents.current())
        # The server is gone now: the document fetched before is still given.
        again = merge(gateway_document, await documents.current())

    for merged in (first, again):
        assert merged["paths"]["/api/tenant/things"]["get"]["operationId"] == "tenant_get_things"
        assert "/healthz" not in merged["paths"]
        assert merged["components"]["schemas"]["tenant.Thing"] == {"type": "object"}
        assert "tenant" not in merged["x-unavailable-services"]
    # A service never reached is listed as unavailable.
    assert "file" in first["x-unavailable-services"]
