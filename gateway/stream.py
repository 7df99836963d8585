"""``GET /api/workflows/{id}/stream``: an operation's progress as Server-Sent Events, served by
the same ProgressHub as the GraphQL subscriptions (one watcher per operation per process).

Each event's ``id:`` is its offset; a client that reconnects with ``Last-Event-ID`` (browsers
do it by themselves) gets exactly the events after it. Comments keep idle connections alive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from adx.problems import problem_for
from contracts.errors import ErrorKind
from gateway.errors import problem_from
from gateway.identity import caller_of, unauthenticated
from subscriptions.events import HubEvent, StreamInterrupted
from subscriptions.hub import ProgressHub
from workflow_client.errors import WorkflowClientError

HEARTBEAT_SECONDS = 15


def _resume_offset(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("from_offset") or "0"
    return int(raw) if raw.isascii() and raw.isdigit() else None


async def stream(request: Request) -> Response:
    caller = caller_of(request)
    if caller is None:
        return unauthenticated(request)
    from_offset = _resume_offset(request)
    if from_offset is None:
        return problem_for(ErrorKind.VALIDATION, "Last-Event-ID must be an offset", request=request)
    hub: ProgressHub = request.app.state.hub
    try:
        events = await hub.subscribe(caller, request.path_params["id"], from_offset)
    except WorkflowClientError as error:
        return problem_from(error, request)
    return EventSourceResponse(
        _as_sse(events),
        ping=HEARTBEAT_SECONDS,
        sep="\n",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _as_sse(events: AsyncIterator[HubEvent]) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in events:
            yield ServerSentEvent(
                data=event.model_dump_json(),
                id=str(event.offset),
                event="terminal" if event.terminal else "progress",
            )
    except StreamInterrupted as interrupted:
        # The client reconnects (EventSource does) and resumes from its Last-Event-ID.
        yield ServerSentEvent(
            data=f'{{"resume_from": {interrupted.last_offset}}}',
            event="interrupted",
            retry=1000,
        )
    finally:
        await events.aclose()  # type: ignore[attr-defined]
