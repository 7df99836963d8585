"""The gateway's OpenAPI document, built from the routes and the pydantic models they use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from adx.problems import PROBLEM_SCHEMA, problem_response
from contracts.operations import OperationStatus
from gateway.catalog import CATALOG
from gateway.workflows import CancelRequest


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": problem_response("no or invalid bearer token"),
    "404": problem_response("not found (also another tenant's resource)"),
    "422": problem_response("invalid input, with field errors"),
    "429": problem_response("rate limited; see Retry-After"),
    "503": problem_response("a dependency is unavailable"),
}
OPERATION_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "pattern": r"^[a-z][a-z0-9_]{0,63}-[A-Za-z0-9_.:@]{1,128}-[0-9a-f]{32}$",
    },
}
ACCEPTED = _json({"$ref": "#/components/schemas/OperationAccepted"}, "accepted; follow the links")


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {
        "Problem": PROBLEM_SCHEMA,
        "OperationAccepted": {
            "type": "object",
            "required": ["operation_id", "status", "status_url", "stream_url", "cancel_url"],
            "properties": {
                "operation_id": {"type": "string"},
                "status": {"type": "string"},
                "status_url": {"type": "string"},
                "result_url": {"type": "string"},
                "stream_url": {"type": "string"},
                "cancel_url": {"type": "string"},
            },
        },
    }
    paths: dict[str, Any] = {}
    for name, entry in sorted(CATALOG.items()):
        responses: dict[str, Any] = {"202": ACCEPTED, **ERRORS}
        if entry.sync_budget is not None:
            responses["200"] = _json({"type": "object"}, "completed within the budget")
        paths[f"/api/workflows/{name}"] = {
            "post": {
                "summary": entry.summary,
                "operationId": f"start_{name}",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _schema(entry.input_model, components)}
                    },
                },
                "responses": responses,
            }
        }
    paths["/api/workflows"] = {
        "get": {
            "summary": "the caller's tenant's operations",
            "operationId": "list_operations",
            "parameters": [
                {
                    "name": "type",
                    "in": "query",
                    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 64},
                },
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": [s.value for s in OperationStatus]},
                },
                {
                    "name": "page_size",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {
                    "name": "page_token",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": 4096},
                },
            ],
            "responses": {"200": _json({"type": "object"}, "a page of operations"), **ERRORS},
        }
    }
    paths["/api/workflows/{id}/status"] = {
        "get": {
            "summary": "status and progress",
            "operationId": "operation_status",
            "parameters": [
                OPERATION_ID_PARAM,
                {
                    "name": "after_offset",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "responses": {"200": _json({"type": "object"}, "status"), **ERRORS},
        }
    }
    paths["/api/workflows/{id}/result"] = {
        "get": {
            "summary": "the result once completed",
            "operationId": "operation_result",
            "parameters": [OPERATION_ID_PARAM],
            "responses": {"200": _json({"type": "object"}, "completed"), "202": ACCEPTED, **ERRORS},
        }
    }
    paths["/api/workflows/{id}/stream"] = {
        "get": {
            "summary": "progress as Server-Sent Events (id = offset; resume with Last-Event-ID)",
            "operationId": "operation_stream",
            "parameters": [
                OPERATION_ID_PARAM,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
                },
            ],
            "responses": {
                "200": {"description": "event stream", "content": {"text/event-stream": {}}},
                **ERRORS,
            },
        }
    }
    paths["/api/workflows/{id}/cancel"] = {
        "post": {
            "summary": "request cancellation (compensations run)",
            "operationId": "cancel_operation",
            "parameters": [OPERATION_ID_PARAM],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _schema(CancelRequest, components)}},
            },
            "responses": {"202": _json({"type": "object"}, "cancel requested"), **ERRORS},
        }
    }
    paths["/api/workflows/{id}/retry"] = {
        "post": {
            "summary": "start a failed or cancelled operation again",
            "operationId": "retry_operation",
            "parameters": [OPERATION_ID_PARAM],
            "responses": {"202": ACCEPTED, **ERRORS},
        }
    }
    for path, summary in (("/healthz", "liveness"), ("/readyz", "readiness")):
        paths[path] = {
            "get": {
                "summary": summary,
                "operationId": path.strip("/"),
                "responses": {
                    "200": _json({"type": "object"}, "ok"),
                    "503": problem_response("not ready"),
                },
            }
        }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {"200": {"description": "text exposition", "content": {"text/plain": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ADX Core API gateway", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }
