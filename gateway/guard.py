"""In front of every ``/api`` route: the caller's identity from the bearer token (verified
with the auth service's JWKS) and the rate limits per user and per tenant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from adx.identity import InvalidToken, bearer_token
from adx.jwks import JwksVerifier
from adx.problems import problem, problem_for
from contracts.errors import ErrorKind
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimits


class GatewayGuard:
    def __init__(
        self, app: ASGIApp, verifier: JwksVerifier, limits: RateLimits, metrics: GatewayMetrics
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.limits = limits
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        state["identity"] = None
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            try:
                claims = await self.verifier.verify(token)
            except InvalidToken as error:
                response = problem_for(
                    ErrorKind.AUTHENTICATION,
                    str(error),
                    request=request,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                await response(scope, receive, send)
                return
            state["identity"] = claims.context(state.get("correlation_id"))
        identity = state["identity"]
        user_key = (
            identity.user_id if identity else f"ip:{request.client.host if request.client else '-'}"
        )
        verdict = await self.limits.hit(user_key, identity.tenant_id if identity else None)
        if not verdict.allowed:
            self.metrics.rate_limited.labels(verdict.scope).inc()
            response = problem(
                429,
                "Too many requests",
                f"the {verdict.scope} rate limit is exhausted",
                request=request,
                headers={"Retry-After": str(verdict.retry_after)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
