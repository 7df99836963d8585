"""``/api/{service}/...``: requests streamed to an instance of the service and the answer
streamed back (no body is held in memory whole, so large uploads and downloads pass through)."""

from __future__ import annotations

import httpx
import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from adx.logging import CORRELATION_HEADER
from adx.problems import problem
from gateway.upstreams import UpstreamFailure, UpstreamHung, Upstreams, UpstreamUnavailable

log = structlog.stdlib.get_logger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def _forward_headers(request: Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    correlation_id = request.scope.get("state", {}).get("correlation_id")
    if correlation_id:
        headers[CORRELATION_HEADER] = correlation_id
    if request.client is not None:
        prior = request.headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = (
            f"{prior}, {request.client.host}" if prior else request.client.host
        )
    return headers


def _raw_target(request: Request) -> str:
    """The path and query as the client sent them (percent-encoded): the decoded path may
    hold characters no URL can carry."""
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def proxy(request: Request) -> Response:
    service: str = request.path_params["service"]
    upstreams: Upstreams = request.app.state.upstreams
    http: httpx.AsyncClient = request.app.state.http
    timeout = request.app.state.settings.gateway_upstream_timeout_seconds
    if not upstreams.knows(service):
        return problem(404, "Not found", f"no service named {service!r}", request=request)
    try:
        async with upstreams.checkout(service) as upstream:
            with_body = request.method not in ("GET", "HEAD")
            headers = _forward_headers(request)
            if not with_body:
                # A GET's body means nothing (RFC 9110 §9.3.1) and is not sent on: nor is its
                # length, which would leave the service waiting for it.
                headers.pop("content-length", None)
            outgoing = http.build_request(
                request.method,
                f"{upstream.base_url}{_raw_target(request)}",
                headers=headers,
                content=request.stream() if with_body else None,
                timeout=timeout,
            )
            try:
                answer = await upstreams.answer(upstream, http.send(outgoing, stream=True))
            except httpx.HTTPError as error:
                raise UpstreamFailure(type(error).__name__) from error
            if answer.status_code >= 500:
                await answer.aclose()
                raise UpstreamFailure(f"HTTP {answer.status_code}")
    except UpstreamUnavailable as error:
        return _unavailable(request, error.service, str(error))
    except UpstreamHung as error:
        log.warning("upstream.hung", service=service, reason=str(error))
        return _unavailable(request, service, f"the {service} service did not answer in time")
    except UpstreamFailure as error:
        log.warning("upstream.failed", service=service, reason=str(error))
        return problem(
            502,
            "Bad gateway",
            f"the {service} service failed to answer",
            request=request,
            service=service,
        )
    # The gateway's own middleware sets the correlation header on the way out.
    headers = {
        k: v
        for k, v in answer.headers.items()
        if k.lower() not in _HOP_BY_HOP and k.lower() != CORRELATION_HEADER
    }
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=headers,
        background=BackgroundTask(answer.aclose),
    )


def _unavailable(request: Request, service: str, detail: str) -> Response:
    return problem(
        503,
        "Service unavailable",
        detail,
        request=request,
        service=service,
        headers={"Retry-After": "5"},
    )
