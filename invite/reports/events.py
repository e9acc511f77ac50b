"""Live task events for Server-Sent Events, on every replica.

The API and the engine publish ``pg_notify('invite_task_events', '{"task_id": ..., "type":
"status"|"progress", ...}')`` in the transactions that make the change, so an event is seen only
if the change committed, by every replica. Each replica holds **one** dedicated connection
that LISTENs on the channel (``TaskEventHub``) and fans the events out in-process to the
streams open on it, by task id.

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

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar.response.sse import ServerSentEventMessage

from invite.kernel.background import BackgroundLoop
from invite.kernel.clock import Clock
from invite.kernel.db import DbConnection, queries
from invite.kernel.embedded import database_url
from invite.kernel.settings import Settings

CHANNEL = "invite_task_events"
MAX_QUEUED = 256  # events held for one slow stream before it is sent a snapshot instead
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
PING_SECONDS = 30.0  # the listening connection proves it is alive this often
PROGRESS_EVERY = 1.0  # a stream sends the task's counts at most this often

log = structlog.get_logger(__name__)


class TaskEvent(msgspec.Struct, frozen=True):
    type: str  # "status", "progress", ... as published; "resync" when events may be lost
    data: str  # the payload as published (JSON text)


RESYNC = TaskEvent("resync", "")
CLOSING = TaskEvent("closing", "")  # the process is shutting down: the stream ends


class _Header(msgspec.Struct):
    task_id: str
    type: str = "status"


class Subscription:
    """Events of one task for one stream; ``wakeup`` is set while some are waiting."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.wakeup = asyncio.Event()
        self._events: deque[TaskEvent] = deque()

    def push(self, event: TaskEvent) -> None:
        if event.type == "progress" and self._events and self._events[-1].type == "progress":
            self._events[-1] = event  # only the newest progress matters
        elif len(self._events) >= MAX_QUEUED:
            self._events.clear()
            self._events.append(RESYNC)
        else:
            self._events.append(event)
        self.wakeup.set()

    def drain(self) -> list[TaskEvent]:
        events = list(self._events)
        self._events.clear()
        self.wakeup.clear()
        return events


class TaskEventHub(BackgroundLoop):
    """The replica's one LISTEN connection, fanned out to in-process subscriptions."""

    name = "task-event-hub"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._connect = connect or self._connect_to_database
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self.listening = asyncio.Event()
        self.closing = False

    # --- background service ------------------------------------------------------------

    # --- subscriptions -----------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, task_id: str) -> Iterator[Subscription]:
        subscription = Subscription(task_id)
        self._subscriptions[task_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions.get(task_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[task_id]

    def close_streams(self) -> None:
        """Shutdown: every open stream ends now, and any opened from here on ends at once."""
        self.closing = True
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.push(CLOSING)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    def _dispatch(self, _conn: DbConnection, _pid: int, _channel: str, payload: object) -> None:
        try:
            header = msgspec.json.decode(str(payload), type=_Header)
        except msgspec.DecodeError:
            log.warning("task event ignored: not the expected JSON")
            return
        event = TaskEvent(header.type, str(payload))
        for subscription in self._subscriptions.get(header.task_id, ()):
            subscription.push(event)

    def _resync_all(self) -> None:
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.push(RESYNC)

    # --- the listening connection ------------------------------------------------------

    async def _connect_to_database(self) -> asyncpg.Connection:
        return await asyncpg.connect(await database_url(self._settings))

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        ping = queries(self._settings.sql_dir)["health.ping"]
        while True:
            conn: asyncpg.Connection | None = None
            try:
                with self._clock.busy():
                    conn = await self._connect()
                    lost = asyncio.Event()
                    conn.add_termination_listener(_setter(lost))
                    await conn.add_listener(CHANNEL, self._dispatch)
                self.listening.set()
                self._resync_all()  # anything published while we were not listening is lost
                delay = RECONNECT_MIN_SECONDS
                while not await self._clock.wait(lost, PING_SECONDS):
                    with self._clock.busy():
                        await asyncio.wait_for(conn.fetchval(ping), timeout=PING_SECONDS)
                log.warning("task events: listening connection lost; reconnecting")
            except Exception as exc:  # whatever broke, the replica keeps trying to listen
                log.warning("task events: cannot listen; retrying", error=type(exc).__name__, retry_in=delay)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await self._clock.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


def _setter(event: asyncio.Event) -> Callable[[DbConnection], None]:
    return lambda _conn: event.set()


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
                    if event is CLOSING:
                        return
                    if event is RESYNC:
                        yield await _state("snapshot", snapshot)
                    elif event.type == "progress":
                        progress_due = True
                        continue
                    else:
                        yield ServerSentEventMessage(event=event.type, data=event.data)
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
