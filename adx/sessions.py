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
"""

from __future__ import annotations

import time

import httpx
import structlog

from adx.identity import InvalidToken, TokenClaims

log = structlog.stdlib.get_logger(__name__)

# Entries kept before expired ones are dropped (one per session seen within ttl).
MAX_ENTRIES = 50_000


class SessionCheck:
    def __init__(
        self, session_url: str, http: httpx.AsyncClient, *, ttl: float = 5.0, timeout: float = 2.0
    ) -> None:
        self._url = session_url
        self._http = http
        self._ttl = ttl
        self._timeout = timeout
        # session id -> (until when the answer holds, the grant's roles; None: ended)
        self._known: dict[str, tuple[float, list[str] | None]] = {}

    async def current(self, token: str, claims: TokenClaims) -> TokenClaims:
        """``claims`` with the session's current roles; InvalidToken if it has ended."""
        now = time.monotonic()
        known = self._known.get(claims.sid)
        if known is None or known[0] <= now:
            try:
                answer = await self._ask(token)
            except _Unanswered:
                return claims
            known = (now + self._ttl, answer)
            self._remember(claims.sid, known, now)
        roles = known[1]
        if roles is None:
            raise InvalidToken("the session has ended")
        return claims.model_copy(update={"roles": roles})

    async def _ask(self, token: str) -> list[str] | None:
        """The session's current roles; None: it has ended."""
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

    def _remember(self, sid: str, known: tuple[float, list[str] | None], now: float) -> None:
        if len(self._known) >= MAX_ENTRIES:
            self._known = {k: v for k, v in self._known.items() if v[0] > now}
        self._known[sid] = known


class _Unanswered(Exception):
    """The auth service gave no answer about the session."""
