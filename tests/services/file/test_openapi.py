"""The file service's OpenAPI document: every API route is documented, the dev routes are not,
and the list query the document gives is the one the handler validates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.routing import Route

from services.common.openapi import Endpoint, openapi_document
from services.file.api import FileApi
from services.file.models import FilesQuery


def _routes() -> list[Route]:
    # routes() only binds handlers: no runtime is needed to build the document.
    routes = FileApi.__new__(FileApi).routes()
    assert all(isinstance(route, Route) for route in routes)
    return [route for route in routes if isinstance(route, Route)]


def test_every_api_route_is_documented_and_dev_routes_are_not() -> None:
    routes = _routes()
    for route in routes:
        assert isinstance(route, Endpoint) == route.path.startswith("/api/file/"), route.path
    document = openapi_document("file", routes)
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {
        ("POST", "/api/file/uploads"),
        ("GET", "/api/file/files"),
        ("GET", "/api/file/files/{file_id}"),
        ("PATCH", "/api/file/files/{file_id}"),
        ("DELETE", "/api/file/files/{file_id}"),
        ("GET", "/api/file/files/{file_id}/content"),
        ("GET", "/api/file/files/{file_id}/thumbnail"),
        ("GET", "/api/file/files/{file_id}/shares"),
        ("POST", "/api/file/files/{file_id}/shares"),
        ("POST", "/api/file/files/{file_id}/processing"),
        ("GET", "/api/file/quota"),
        ("POST", "/api/file/migrations"),
    }
    upload = document["paths"]["/api/file/uploads"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {p["name"] for p in upload["parameters"]} == {"X-Filename", "Idempotency-Key"}
    listing = document["paths"]["/api/file/files"]["get"]["parameters"]
    assert [p["name"] for p in listing] == ["limit", "cursor"]


def test_the_documented_get_routes_answer_head_too() -> None:
    content = next(route for route in _routes() if route.path.endswith("/content"))
    assert content.methods == {"GET", "HEAD"}


@pytest.mark.parametrize("limit", ["0", "101", "+5", " 5", "5.0", "1_0", "-1", "x", ""])
def test_the_list_query_takes_a_whole_number_limit(limit: str) -> None:
    with pytest.raises(ValidationError):
        FilesQuery.model_validate({"limit": limit})


def test_the_list_query_defaults() -> None:
    assert FilesQuery.model_validate({}).limit == 20
    assert FilesQuery.model_validate({"limit": "100", "cursor": ""}).page_cursor() is None
    assert FilesQuery.model_validate({"limit": "7"}).limit == 7
