"""Probes telling whether a started process serves yet."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from adx.devstack.spec import HttpCheck, ReadinessCheck, TcpCheck

PROBE_TIMEOUT_SECONDS = 2.0


class Prober:
    """One HTTP client for every probe of a launcher run (call :meth:`aclose` at the end)."""

    def __init__(self) -> None:
        # trust_env=False: an HTTP(S)_PROXY of the developer must not intercept localhost probes.
        self._http = httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS, trust_env=False)

    async def is_ready(self, check: ReadinessCheck) -> bool:
        if isinstance(check, TcpCheck):
            return await tcp_accepts(check.host, check.port)
        return await self._http_ok(check)

    async def _http_ok(self, check: HttpCheck) -> bool:
        try:
            response = await self._http.get(check.url)
        except httpx.HTTPError:
            return False
        return response.is_success

    async def aclose(self) -> None:
        await self._http.aclose()


async def tcp_accepts(host: str, port: int, within: float = PROBE_TIMEOUT_SECONDS) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
