"""Serving an ASGI app over real HTTP on loopback for a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.support.servers import free_port


@asynccontextmanager
async def serve_app(app: ASGIApp, *, lifespan: bool = False) -> AsyncIterator[str]:
    """Runs ``app`` with uvicorn on a free port (with its lifespan when asked); yields its
    base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="on" if lifespan else "off"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
