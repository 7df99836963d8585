"""The caller of an ``/api`` request, as the guard verified it (None: no token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from adx.problems import problem_for
from contracts.context import RequestContext
from contracts.errors import ErrorKind


def caller_of(request: Request) -> RequestContext | None:
    identity: RequestContext | None = getattr(request.state, "identity", None)
    return identity


def unauthenticated(request: Request) -> JSONResponse:
    return problem_for(
        ErrorKind.AUTHENTICATION,
        "a bearer access token is required",
        request=request,
        headers={"WWW-Authenticate": "Bearer"},
    )
