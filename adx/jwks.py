"""Verifying access tokens with the auth service's published keys (JWKS).

The key set is cached; a token signed with a key id the cache does not know triggers one
refresh (rate-limited), so a key rotation at the auth service is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import redis.asyncio as aioredis
import structlog

from adx.identity import InvalidToken, TokenClaims, TokenType, TokenVerifier
from adx.sessions import SessionCheck
from adx.settings import Settings

log = structlog.stdlib.get_logger(__name__)

# A shared session answer that takes longer than this is not waited for (the auth service is).
SHARED_TIMEOUT_SECONDS = 0.5


class JwksVerifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        http: httpx.AsyncClient,
        cache_seconds: float = 300.0,
        min_refresh_interval: float = 5.0,
        sessions: SessionCheck | None = None,
    ) -> None:
        self._url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._http = http
        self._cache_seconds = cache_seconds
        self._min_refresh_interval = min_refresh_interval
        self._verifier: TokenVerifier | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0
        self._sessions = sessions

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> JwksVerifier:
        """The auth service's keys, and (``session_check``) its word on each session."""
        sessions = None
        if settings.checks_sessions:
            shared = None
            if settings.redis_url:
                shared = aioredis.Redis.from_url(
                    settings.redis_url,
                    socket_connect_timeout=SHARED_TIMEOUT_SECONDS,
                    socket_timeout=SHARED_TIMEOUT_SECONDS,
                )
            sessions = SessionCheck(
                settings.url("auth", "/api/auth/session"),
                http,
                ttl=settings.session_check_seconds,
                shared=shared,
            )
        return cls(
            settings.jwks_url or settings.url("auth", "/.well-known/jwks.json"),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            http=http,
            cache_seconds=settings.jwks_cache_seconds,
            sessions=sessions,
        )

    @property
    def sessions(self) -> SessionCheck | None:
        return self._sessions

    async def aclose(self) -> None:
        if self._sessions is not None:
            await self._sessions.aclose()

    async def verify(self, token: str, expected: TokenType = TokenType.ACCESS) -> TokenClaims:
        kid = TokenVerifier.key_id(token)
        if kid is None:
            raise InvalidToken("malformed token")
        verifier = await self._current(kid)
        claims = verifier.verify(token, expected)
        if self._sessions is not None and expected is TokenType.ACCESS:
            return await self._sessions.current(token, claims)
        return claims

    async def _current(self, kid: str) -> TokenVerifier:
        now = time.monotonic()
        verifier = self._verifier
        stale = verifier is None or now - self._fetched_at > self._cache_seconds
        unknown_kid = verifier is not None and not verifier.knows(kid)
        may_refresh = now - self._fetched_at > self._min_refresh_interval
        if stale or (unknown_kid and may_refresh):
            async with self._lock:
                # Another request may have refreshed while this one waited.
                if self._verifier is verifier:
                    await self._refresh()
        if self._verifier is None:
            raise InvalidToken("signing keys unavailable")
        return self._verifier

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("jwks.refresh_failed", url=self._url, error=type(error).__name__)
            self._fetched_at = time.monotonic()  # back off; keep the keys we have
            return
        self._verifier = TokenVerifier(jwks, issuer=self._issuer, audience=self._audience)
        self._fetched_at = time.monotonic()
        self.fetches += 1
        log.info("jwks.refreshed", keys=len(jwks.get("keys", [])))
