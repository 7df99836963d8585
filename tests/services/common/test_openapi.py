"""The services' OpenAPI documents: every route but the development ones is documented, and a
document says what the declarations say (query models as parameters, bodies, answers by
status, the errors every endpoint may give)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.auth.api import AuthApi
from services.common.openapi import IDEMPOTENCY_KEY, Doc, Endpoint, openapi_document
from services.file.api import FileApi
from services.tenant.api import TenantApi
from services.user.api import UserApi
from services.workflow.api import WorkflowApi
from tests.support.schemathesis import references

APIS = (AuthApi, FileApi, TenantApi, UserApi, WorkflowApi)
UNDOCUMENTED = ("/dev/", "/.well-known/")  # development helpers and the JWKS, not proxied


@pytest.mark.parametrize("api", APIS, ids=lambda api: api.__name__)
def test_every_route_is_documented(api: type[Any]) -> None:
    # routes() only refers to bound handlers: no runtime is needed to read them.
    routes = object.__new__(api).routes()
    bare = [
        route.path
        for route in routes
        if not isinstance(route, Endpoint) and not route.path.startswith(UNDOCUMENTED)
    ]
    assert bare == []
    document = openapi_document(api.__name__, routes)
    schemas = document["components"]["schemas"]
    for ref in references(document):
        assert ref.removeprefix("#/components/schemas/") in schemas
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) == sum(isinstance(route, Endpoint) for route in routes)
    assert len({op["operationId"] for op in operations}) == len(operations)


class Search(BaseModel):
    q: str = Field(max_length=10)
    after: str | None = None


class Thing(BaseModel):
    id: str
    note: str | None


async def _handler(_request: Request) -> Response:
    return Response()


def test_a_document_follows_the_declarations() -> None:
    routes = [
        Endpoint(
            "/api/x/things/{thing_id}",
            _handler,
            "GET",
            Doc("a thing", {200: Thing}, query=Search, errors=(403,)),
        ),
        Endpoint(
            "/api/x/things",
            _handler,
            "POST",
            Doc("make one", {202: list[Thing]}, body=Thing, public=True, headers=IDEMPOTENCY_KEY),
        ),
        Route("/dev/outbox", _handler),
    ]
    document = openapi_document("x", routes)
    assert set(document["paths"]) == {"/api/x/things/{thing_id}", "/api/x/things"}

    read = document["paths"]["/api/x/things/{thing_id}"]["get"]
    parameters = {(p["in"], p["name"]): p for p in read["parameters"]}
    assert set(parameters) == {("path", "thing_id"), ("query", "q"), ("query", "after")}
    assert parameters[("query", "q")]["required"] is True
    assert parameters[("query", "q")]["schema"]["maxLength"] == 10
    # A query parameter is absent or a string, never null.
    assert parameters[("query", "after")]["schema"]["type"] == "string"
    assert read["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    assert {"401", "403", "404", "422", "503"} <= set(read["responses"])
    assert read["security"] == [{"bearer": []}]

    make = document["paths"]["/api/x/things"]["post"]
    assert make["security"] == []
    assert "401" not in make["responses"]
    assert make["responses"]["202"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Thing"},
    }
    assert make["parameters"] == [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": IDEMPOTENCY_KEY["Idempotency-Key"],
        }
    ]
    thing = document["components"]["schemas"]["Thing"]
    assert thing["required"] == ["id", "note"]
