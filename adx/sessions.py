"""Revocation that takes effect before a token expires: a verified access token counts only
while its session is open, with the roles its grant has now.

An access token lives for minutes; logout, deactivation, suspension and role changes happen
in the auth service at once. The gateway and the BFFs ask the auth service (``GET
/api/auth/session``: the session's state and the stored grant's roles) about each session at
most every ``ttl`` seconds, so any of these counts everywhere within that; a session that
ended less than ``ttl`` ago counts too (a request in flight when its tenant switch ended the
old session finishes, as it would have with a cached answer). If the auth service does not
answer, the token's own claims stand (it expires on its own): availability over an instant
revocation, logged.

Requests of one session that find its answer stale at the same moment wait for one question
to the auth service. With Redis configured, an answer is shared by every process for its
``ttl`` (so N gateway and BFF processes ask once per session and interval, not N times);
Redis failing, each process asks for itself.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from adx.identity import InvalidToken, TokenClaims

log = structlog.stdlib.get_logger(__name__)

# Entries kept before expired ones are dropped (one per session seen within ttl).
MAX_ENTRIES = 50_000
SHARED_PREFIX = "adx:session:"
# After a Redis failure, the shared answers are not tried for this long (no added timeouts).
SHARED_BYPASS_SECONDS = 1.0

# The grant's roles while the session is open; None: it has ended.
Answer = list[str] | None


class SessionCheck:
    def __init__(
        self,
        session_url: str,
        http: httpx.AsyncClient,
        *,
        ttl: float = 5.0,
        timeout: float = 2.0,
        shared: aioredis.Redis | None = None,
    ) -> None:
        self._url = session_url
        self._http = http
        self._ttl = ttl
        self._timeout = timeout
        self._shared = shared
        self._shared_retry_at = 0.0
        # session id -> (until when the answer holds, the answer)
        self._known: dict[str, tuple[float, Answer]] = {}
        # session id -> the question being asked about it
        self._asking: dict[str, asyncio.Future[Answer]] = {}
        self.questions = 0  # asked of the auth service (diagnostics and tests)

    async def current(self, token: str, claims: TokenClaims) -> TokenClaims:
        """``claims`` with the session's current roles; InvalidToken if it has ended."""
        now = time.monotonic()
        known = self._known.get(claims.sid)
        if known is None or known[0] <= now:
            try:
                answer = await self._answer(claims.sid, token)
            except _Unanswered:
                return claims
            known = (now + self._ttl, answer)
            self._remember(claims.sid, known, now)
        roles = known[1]
        if roles is None:
            raise InvalidToken("the session has ended")
        return claims.model_copy(update={"roles": roles})

    async def _answer(self, sid: str, token: str) -> Answer:
        """One question per session at a time: concurrent callers share it."""
        asking = self._asking.get(sid)
        if asking is None:
            asking = asyncio.ensure_future(self._lookup(sid, token))
            self._asking[sid] = asking
            asking.add_done_callback(lambda _: self._asking.pop(sid, None))
        return await asyncio.shield(asking)

    async def _lookup(self, sid: str, token: str) -> Answer:
        shared = await self._shared_answer(sid)
        if shared is not None:
            return shared[0]
        answer = await self._ask(token)
        await self._share(sid, answer)
        return answer

    async def _shared_answer(self, sid: str) -> tuple[Answer] | None:
        """Another process's answer still within its ttl (a 1-tuple); None: none."""
        if self._shared is None or time.monotonic() < self._shared_retry_at:
            return None
        try:
            stored = await self._shared.get(SHARED_PREFIX + sid)
        except RedisError as error:
            self._shared_failed(error)
            return None
        if stored is None:
            return None
        roles = json.loads(stored)["roles"]
        return (None if roles is None else [str(role) for role in roles],)

    async def _share(self, sid: str, answer: Answer) -> None:
        if self._shared is None or time.monotonic() < self._shared_retry_at:
            return
        try:
            await self._shared.set(
                SHARED_PREFIX + sid, json.dumps({"roles": answer}), px=max(1, int(self._ttl * 1000))
            )
        except RedisError as error:
            self._shared_failed(error)

    def _shared_failed(self, error: RedisError) -> None:
        log.warning("session_check.shared_unavailable", error=type(error).__name__)
        self._shared_retry_at = time.monotonic() + SHARED_BYPASS_SECONDS

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()

    async def _ask(self, token: str) -> Answer:
        """The session's current roles; None: it has ended."""
        self.questions += 1
        try:
            response = await self._http.get(
                self._url, headers={"Authorization": f"Bearer {token}"}, timeout=self._timeout
            )
        except httpx.HTTPError as error:
            log.warning("session_check.unavailable", error=type(error).__name__)
            raise _Unanswered from error
        if response.status_code == 401:
            return None
        if response.status_code != 200:
            log.warning("session_check.unavailable", status=response.status_code)
            raise _Unanswered
        state = response.json()
        ended = state.get("ended_seconds_ago")
        if ended is not None and float(ended) >= self._ttl:
            return None
        return [str(role) for role in state.get("roles", [])]

    def _remember(self, sid: str, known: tuple[float, Answer], now: float) -> None:
        if len(self._known) >= MAX_ENTRIES:
            self._known = {k: v for k, v in self._known.items() if v[0] > now}
        self._known[sid] = known


class _Unanswered(Exception):
    """The auth service gave no answer about the session."""
