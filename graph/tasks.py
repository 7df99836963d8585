"""Work a resolver leaves running after it answered: invalidating cache tags when an operation
a mutation started has finished (its change lands after the mutation's answer).

The tasks are held (an unreferenced task may be garbage-collected mid-flight) and bounded in
time; ``drain`` cancels whatever is left (shutdown, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from typing import Any

import structlog

from contracts.context import RequestContext
from graph.context import BffDependencies
from workflow_client.errors import WorkflowClientError

log = structlog.stdlib.get_logger(__name__)

# How long a finished operation is waited for before its tags are left to their TTL.
WATCH_SECONDS = 300.0


def spawn(deps: BffDependencies, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.create_task(work)
    tasks = deps.background_tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def pending(deps: BffDependencies) -> int:
    return len(deps.background_tasks)


async def drain(deps: BffDependencies) -> None:
    tasks = list(deps.background_tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def invalidate_when_done(
    deps: BffDependencies,
    who: RequestContext,
    operation_id: str,
    tags: Collection[str],
    *,
    window_seconds: float = WATCH_SECONDS,
) -> None:
    """Invalidates ``tags`` once the operation has ended (completed, failed or compensated:
    either way what was cached before may be wrong now), or after ``window_seconds``."""
    try:
        async with asyncio.timeout(window_seconds):
            await deps.operations.result(who, operation_id)
    except TimeoutError:
        pass
    except WorkflowClientError as error:
        log.info("cache.watch_ended", operation_id=operation_id, error=type(error).__name__)
    await deps.gateway.invalidate(tags)


def watch(
    deps: BffDependencies, who: RequestContext, operation_id: str, tags: Collection[str]
) -> None:
    spawn(deps, invalidate_when_done(deps, who, operation_id, list(tags)))
