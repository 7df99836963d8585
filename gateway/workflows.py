"""Workflow endpoints (seed 003): start, status, result, cancel, retry and list operations.

Every call acts as the caller's verified identity; another tenant's operation is 404.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adx.bodies import BodyTooLarge, read_limited
from adx.problems import problem, problem_for, validation_problem
from contracts.errors import ErrorKind
from contracts.operations import OperationStatus
from gateway.catalog import CATALOG
from gateway.errors import problem_from
from gateway.identity import caller_of, unauthenticated
from workflow_client.errors import WorkflowClientError, WorkflowFailed
from workflow_client.models import Operation
from workflow_client.operations import WorkflowOperations

MAX_IDEMPOTENCY_KEY = 200


class CancelRequest(BaseModel):
    reason: str = Field(default="cancelled by the user", max_length=500)


class ListQuery(BaseModel):
    type: str | None = Field(default=None, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    status: OperationStatus | None = None
    page_size: int = Field(default=20, ge=1, le=100)
    page_token: str | None = Field(default=None, max_length=4096)


def _ops(request: Request) -> WorkflowOperations:
    ops: WorkflowOperations = request.app.state.operations
    return ops


def _links(request: Request, operation_id: str) -> dict[str, str]:
    base = f"/api/workflows/{operation_id}"
    return {
        "status_url": f"{base}/status",
        "result_url": f"{base}/result",
        "stream_url": f"{base}/stream",
        "cancel_url": f"{base}/cancel",
    }


def _accepted(request: Request, operation: Operation) -> JSONResponse:
    return JSONResponse(
        {
            "operation_id": operation.id,
            "status": operation.status.value,
            **_links(request, operation.id),
        },
        status_code=202,
        headers={"Location": f"/api/workflows/{operation.id}/status"},
    )


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


async def _read_json(request: Request) -> bytes | Response:
    limit: int = request.app.state.settings.gateway_max_json_bytes
    try:
        return await read_limited(request, limit) or b"{}"
    except BodyTooLarge as error:
        return problem(413, "Content too large", str(error), request=request)


async def start(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    entry = CATALOG.get(request.path_params["type"])
    if entry is None:
        return problem_for(ErrorKind.NOT_FOUND, "unknown workflow type", request=request)
    if entry.roles and not entry.roles.intersection(caller.roles):
        return problem_for(
            ErrorKind.AUTHORIZATION, "your role may not start this operation", request=request
        )
    body = await _read_json(request)
    if isinstance(body, Response):
        return body
    try:
        payload = entry.input_model.model_validate_json(body)
    except ValidationError as error:
        return validation_problem(error, request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        return problem_for(
            ErrorKind.VALIDATION, "Idempotency-Key must be 1-200 characters", request=request
        )
    ops = _ops(request)
    try:
        if entry.sync_budget is None:
            operation = await ops.start(caller, entry.workflow_type, payload, request_key=key)
            return _accepted(request, operation)
        outcome = await ops.execute(
            caller,
            entry.workflow_type,
            payload,
            budget=entry.sync_budget,
            result_type=entry.result_model,
            request_key=key,
        )
    except WorkflowClientError as error:
        return problem_from(error, request)
    if not outcome.completed:
        return _accepted(request, outcome.operation)
    return JSONResponse(
        {
            "operation_id": outcome.operation.id,
            "status": "completed",
            "result": _dump(outcome.result),
        }
    )


async def status(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    after = request.query_params.get("after_offset")
    if after is not None and not (after.isascii() and after.isdigit()):
        return problem_for(
            ErrorKind.VALIDATION, "after_offset must be a whole number", request=request
        )
    try:
        snapshot = await _ops(request).progress(
            caller, request.path_params["id"], after_offset=int(after or 0)
        )
    except WorkflowClientError as error:
        return problem_from(error, request)
    operation = snapshot.operation
    document: dict[str, Any] = {
        "operation_id": operation.id,
        "workflow_type": operation.workflow_type,
        "status": operation.status.value,
        "started_at": operation.started_at.isoformat() if operation.started_at else None,
        "closed_at": operation.closed_at.isoformat() if operation.closed_at else None,
        "retry_of": operation.retry_of,
        "progress": snapshot.report.progress.model_dump(mode="json"),
    }
    if after is not None:
        document["events"] = [e.model_dump(mode="json") for e in snapshot.report.events]
    return JSONResponse(document)


async def result(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    ops = _ops(request)
    operation_id = request.path_params["id"]
    try:
        operation = await ops.describe(caller, operation_id)
        if operation.status is OperationStatus.RUNNING:
            return JSONResponse(
                {
                    "operation_id": operation_id,
                    "status": operation.status.value,
                    **_links(request, operation_id),
                },
                status_code=202,
            )
        entry = CATALOG.get(operation.workflow_type)
        value = await ops.result(
            caller, operation_id, result_type=entry.result_model if entry else None
        )
    except WorkflowFailed as error:
        return problem_from(error, request)
    except WorkflowClientError as error:
        return problem_from(error, request)
    return JSONResponse(
        {"operation_id": operation_id, "status": "COMPLETED", "result": _dump(value)}
    )


async def cancel(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    body = await _read_json(request)
    if isinstance(body, Response):
        return body
    try:
        reason = CancelRequest.model_validate_json(body).reason
    except ValidationError as error:
        return validation_problem(error, request)
    try:
        operation = await _ops(request).cancel(caller, request.path_params["id"], reason)
    except WorkflowClientError as error:
        return problem_from(error, request)
    return JSONResponse(
        {
            "operation_id": operation.id,
            "status": operation.status.value,
            "cancel_requested": not operation.status.is_terminal,
        },
        status_code=202,
    )


async def retry(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    try:
        operation = await _ops(request).retry(caller, request.path_params["id"])
    except WorkflowClientError as error:
        return problem_from(error, request)
    return _accepted(request, operation)


async def list_operations(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    try:
        query = ListQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        return validation_problem(error, request)
    try:
        page = await _ops(request).list_operations(
            caller,
            workflow_type=query.type,
            status=query.status,
            page_size=query.page_size,
            page_token=query.page_token,
        )
    except WorkflowClientError as error:
        return problem_from(error, request)
    return JSONResponse(page.model_dump(mode="json"))
