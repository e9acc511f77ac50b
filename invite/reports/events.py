"""Live task events for Server-Sent Events, on every replica.

The replica's one ``TaskEventHub`` (``invite.kernel.events``) hears every ``TaskEvent`` the API
and the engine publish, and queues each task's events for the streams open on it.

What a client receives (``GET /tasks/{id}/events``):

- ``snapshot``: the task's status and target counts (as ``GET /tasks/{id}/status``), first,
  and again whenever events may have been missed (the hub lost its connection, or the client
  fell too far behind);
- ``status``: a change of the task's status, as published, in order;
- ``progress``: the task's status and counts again, at most once per ``PROGRESS_EVERY``
  seconds while the engine reports progress (it does so on every group commit, up to
  hundreds of times a second);
- a ``: heartbeat`` comment after ``SSE_HEARTBEAT_SECONDS`` of silence, so proxies keep the
  connection open and a vanished client is noticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar.response.sse import ServerSentEventMessage

from invite.kernel.clock import Clock
from invite.kernel.events import Notice, TaskEventHub

PROGRESS_EVERY = 1.0  # a stream sends the task's counts at most this often


async def event_stream(
    hub: TaskEventHub,
    clock: Clock,
    task_id: str,
    snapshot: Callable[[], Awaitable[Any]],
    heartbeat_seconds: float,
) -> AsyncIterator[ServerSentEventMessage]:
    """One client's stream; it ends when the client goes (the response is cancelled) or when the
    process shuts down (the client reconnects to another replica)."""
    if hub.closing:
        return
    with hub.subscribe(task_id) as subscription:  # before the snapshot: nothing falls between
        yield await _state("snapshot", snapshot)
        last_sent = clock.now()
        last_progress: datetime | None = None
        progress_due = False
        while True:
            if progress_due and last_progress is not None:
                wait = PROGRESS_EVERY - (clock.now() - last_progress).total_seconds()
            else:
                wait = 0.0 if progress_due else heartbeat_seconds - (clock.now() - last_sent).total_seconds()
            if await clock.wait(subscription.wakeup, max(wait, 0.0)):
                for event in subscription.drain():
                    if event is Notice.CLOSING:
                        return
                    if event is Notice.RESYNC:
                        yield await _state("snapshot", snapshot)
                    elif event.type == "progress":
                        progress_due = True
                        continue
                    else:
                        yield ServerSentEventMessage(event=event.type, data=event.encode())
                    last_sent = clock.now()
            now = clock.now()
            if progress_due and (
                last_progress is None or (now - last_progress).total_seconds() >= PROGRESS_EVERY
            ):
                yield await _state("progress", snapshot)
                progress_due, last_progress, last_sent = False, now, now
            elif (now - last_sent).total_seconds() >= heartbeat_seconds:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                last_sent = now


async def _state(event: str, snapshot: Callable[[], Awaitable[Any]]) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event, data=msgspec.json.encode(await snapshot()).decode())
