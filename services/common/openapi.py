"""Documented routes and the OpenAPI document a service serves at ``/openapi.json``.

A service declares each route as an :class:`Endpoint`: the handler plus what it reads (query
model, JSON body model or another media type) and what it answers, by status. The document is
built from those declarations and the pydantic models, so it cannot name a model the handler
does not use; the gateway merges the services' documents into its own and the tests fuzz it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute, Route

from adx.problems import PROBLEM_SCHEMA, problem_response

JsonSchema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_DESCRIPTIONS = {
    401: "no valid bearer token (or session)",
    403: "the caller may not do this in its tenant",
    404: "not found (also another tenant's resource)",
    409: "conflicts with the resource's state",
    413: "the body is too large",
    415: "the body's media type is not taken here",
    416: "the range is outside the content",
    422: "invalid input, with field errors",
    503: "a dependency is unavailable",
}
# The errors any endpoint may answer with; an endpoint adds its own.
COMMON_ERRORS = (422, 503)
SIGNED_IN_ERRORS = (401, 404)
# The header a client sends to make a request that starts an operation safe to repeat.
IDEMPOTENCY_KEY: Mapping[str, JsonSchema] = {
    "Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 200}
}


@dataclass(frozen=True)
class Body:
    """A request body that is not a JSON model: ``schema`` per media type."""

    content: Mapping[str, JsonSchema]
    required: bool = True


@dataclass(frozen=True)
class Raw:
    """A response that is not a JSON model (files, images, event streams)."""

    content: Mapping[str, JsonSchema]
    description: str = "content"
    headers: Mapping[str, JsonSchema] = field(default_factory=dict)


# What a status answers with: a type pydantic knows (a model, ``list[Model]``), ``Raw``
# content, or None for no body.
Answer = type[Any] | Any | Raw | None


@dataclass(frozen=True)
class Doc:
    summary: str
    responses: Mapping[int, Answer]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | Body | None = None
    public: bool = False  # no bearer token needed
    errors: tuple[int, ...] = ()
    headers: Mapping[str, JsonSchema] = field(default_factory=dict)  # request headers read
    required_headers: tuple[str, ...] = ()  # those of ``headers`` a request must have
    description: str | None = None


class Endpoint(Route):
    """A route with its documentation: one method per endpoint."""

    def __init__(
        self,
        path: str,
        handler: Callable[..., Any],
        method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"],
        doc: Doc,
    ) -> None:
        super().__init__(path, handler, methods=[method])
        self.method = method.lower()
        self.doc = doc


_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


class _Schemas:
    """Every type's JSON schema, with shared definitions hoisted into components."""

    def __init__(self) -> None:
        self._wanted: list[tuple[tuple[int, str], Literal["validation", "serialization"], Any]] = []
        self._resolved: dict[tuple[int, str], JsonSchema] = {}
        self.components: dict[str, JsonSchema] = {"Problem": PROBLEM_SCHEMA}

    def want(
        self, annotation: Any, mode: Literal["validation", "serialization"]
    ) -> tuple[int, str]:
        key = (id(annotation), mode)
        if all(existing[0] != key for existing in self._wanted):
            self._wanted.append((key, mode, TypeAdapter(annotation)))
        return key

    def resolve(self) -> None:
        schemas, definitions = TypeAdapter.json_schemas(self._wanted, ref_template=REF_TEMPLATE)
        self.components.update(definitions.get("$defs", {}))
        self._resolved = {key: schema for (key, _mode), schema in schemas.items()}

    def get(self, key: tuple[int, str]) -> JsonSchema:
        return self._resolved[key]

    def inline(self, key: tuple[int, str]) -> JsonSchema:
        """The schema itself, not a reference to it (a query model's properties)."""
        schema = self._resolved[key]
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema


def without_null(schema: JsonSchema) -> JsonSchema:
    """``X | None`` documented as ``X``: for a value that may be left out but is never null
    (a query parameter; a field a PATCH may omit but not clear)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**rest, **kept[0]}
    return schema


def openapi_document(title: str, routes: Sequence[BaseRoute]) -> JsonSchema:
    """The OpenAPI 3.1 document of ``routes``' endpoints (undocumented routes are left out)."""
    endpoints = [route for route in routes if isinstance(route, Endpoint)]
    schemas = _Schemas()
    plans: list[tuple[Endpoint, dict[str, Any]]] = []
    for endpoint in endpoints:
        doc = endpoint.doc
        keys: dict[str, Any] = {"responses": {}}
        if doc.query is not None:
            keys["query"] = schemas.want(doc.query, "validation")
        if isinstance(doc.body, type):
            keys["body"] = schemas.want(doc.body, "validation")
        for status, answer in doc.responses.items():
            if answer is not None and not isinstance(answer, Raw):
                keys["responses"][status] = schemas.want(answer, "serialization")
        plans.append((endpoint, keys))
    schemas.resolve()

    paths: dict[str, dict[str, Any]] = {}
    for endpoint, keys in plans:
        operation = _operation(endpoint, keys, schemas)
        paths.setdefault(endpoint.path, {})[endpoint.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(endpoint: Endpoint, keys: dict[str, Any], schemas: _Schemas) -> dict[str, Any]:
    doc = endpoint.doc
    parameters: list[JsonSchema] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(endpoint.path)
    ]
    if "query" in keys:
        query = schemas.inline(keys["query"])
        required = set(query.get("required", ()))
        for name, schema in query.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": without_null(schema),
                }
            )
    for name, schema in doc.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": name in doc.required_headers,
                "schema": schema,
            }
        )

    operation: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": f"{endpoint.method}_{endpoint.name}",
        "security": [] if doc.public else [{"bearer": []}],
    }
    if doc.description:
        operation["description"] = doc.description
    if parameters:
        operation["parameters"] = parameters
    if "body" in keys:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.get(keys["body"])}},
        }
    elif isinstance(doc.body, Body):
        operation["requestBody"] = {
            "required": doc.body.required,
            "content": {media: {"schema": schema} for media, schema in doc.body.content.items()},
        }

    responses: dict[str, Any] = {}
    for status, answer in doc.responses.items():
        if answer is None:
            responses[str(status)] = {"description": "done"}
        elif isinstance(answer, Raw):
            response: dict[str, Any] = {
                "description": answer.description,
                "content": {media: {"schema": schema} for media, schema in answer.content.items()},
            }
            if answer.headers:
                response["headers"] = {
                    name: {"schema": schema} for name, schema in answer.headers.items()
                }
            responses[str(status)] = response
        else:
            responses[str(status)] = {
                "description": "ok",
                "content": {"application/json": {"schema": schemas.get(keys["responses"][status])}},
            }
    errors = {*COMMON_ERRORS, *doc.errors, *(() if doc.public else SIGNED_IN_ERRORS)}
    for status in sorted(errors):
        responses.setdefault(str(status), problem_response(ERROR_DESCRIPTIONS.get(status, "error")))
    operation["responses"] = responses
    return operation
