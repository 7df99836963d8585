"""``/readyz`` for every HTTP process (services, BFFs, gateway): its checks run together, each
bounded, so a hung dependency makes the process "not ready" within a second instead of
holding the probe as long as it hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adx.problems import problem

ReadinessCheck = Callable[[], Awaitable[object]]
# Each check's answer within this, or it counts as failed.
CHECK_TIMEOUT_SECONDS = 1.0


async def failed_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """The checks that failed or did not answer in time, with why (the error's type)."""

    async def run(check: ReadinessCheck) -> None:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check()

    outcomes = await asyncio.gather(*(run(c) for c in checks.values()), return_exceptions=True)
    return {
        name: type(outcome).__name__
        for name, outcome in zip(checks, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    }


def readiness_endpoint(
    checks: Mapping[str, ReadinessCheck], ready: Mapping[str, Any]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint: 200 with ``ready`` (and the checks' names), or a 503 problem naming the
    checks that failed."""

    async def readyz(request: Request) -> Response:
        failed = await failed_checks(checks)
        if failed:
            return problem(
                503, "Not ready", f"{', '.join(failed)} unavailable", request=request, checks=failed
            )
        return JSONResponse({"status": "ready", **ready, "checks": list(checks)})

    return readyz
