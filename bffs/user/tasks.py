"""The user BFF's own background work (run with ``graph.tasks.spawn``): terminating a
dashboard part that missed its budget, invalidating cache tags while a started workflow makes
its changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Collection
from typing import cast

import structlog

from contracts.context import RequestContext
from contracts.progress import EventKind
from graph.context import BffDependencies
from subscriptions.events import HubEvent, StreamInterrupted
from workflow_client.errors import WorkflowClientError

log = structlog.stdlib.get_logger(__name__)

# The steps after which what a workflow changed should be read afresh.
_CHANGE_EVENTS = frozenset({EventKind.STEP_COMPLETED, EventKind.COMPENSATION_COMPLETED})


async def terminate_read(deps: BffDependencies, operation_id: str, reason: str) -> None:
    """Ends a read workflow nobody waits for any more (a read has nothing to clean up)."""
    try:
        await deps.operations.client.get_workflow_handle(operation_id).terminate(reason=reason)
    except Exception as error:  # best effort: it may have just finished, or Temporal is down
        log.info("dashboard.terminate_skipped", operation_id=operation_id, error=repr(error))


async def invalidate_while_running(
    deps: BffDependencies,
    who: RequestContext,
    operation_id: str,
    tags: Collection[str],
    *,
    window_seconds: float,
) -> None:
    """Invalidates ``tags`` each time the operation completes a step (and when it ends), for
    at most ``window_seconds``: a read cached between the mutation's answer and the
    workflow's change would otherwise be served stale until its TTL."""
    try:
        async with asyncio.timeout(window_seconds):
            stream = cast(
                AsyncGenerator[HubEvent, None],
                await deps.hub.subscribe(who, operation_id),
            )
            async with contextlib.aclosing(stream):
                async for event in stream:
                    changed = event.event is not None and event.event.kind in _CHANGE_EVENTS
                    if changed or event.terminal:
                        await deps.gateway.invalidate(tags)
    except TimeoutError:
        pass
    except (WorkflowClientError, StreamInterrupted) as error:
        log.info("cache.invalidation_watch_ended", operation_id=operation_id, error=repr(error))
    await deps.gateway.invalidate(tags)
