"""Task events: what the API and the engine publish on PostgreSQL's ``invite_task_events``
channel, and each replica's one LISTEN connection that hears them.

Every publisher sends a ``TaskEvent`` (``TaskEvent.encode()``) with ``pg_notify`` in the
transaction that makes the change, so an event is seen only if the change committed, and by
every replica. ``TaskEventHub`` is the replica's **one** dedicated connection that LISTENs on the
channel (the app and the engine-only worker each make one at start-up, see
``invite.wiring.open_replica``); it reconnects whenever the connection is lost and hands each
event to what subscribed in-process:

- ``watch(callback)``: every event, and ``None`` whenever events may have been missed (on each
  connection, the first included) — the engine wakes its loops on a status change;
- ``subscribe(task_id)``: one task's events, queued for one ``/events`` stream, with a
  ``Notice.RESYNC`` when events may have been missed (the hub reconnected, or the stream fell
  too far behind) and ``Notice.CLOSING`` when the process shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal

import asyncpg
import msgspec
import structlog

from invite.kernel.background import BackgroundLoop
from invite.kernel.clock import Clock
from invite.kernel.db import DbConnection
from invite.kernel.embedded import database_url
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql

CHANNEL = "invite_task_events"
MAX_QUEUED = 256  # events held for one slow stream before it is sent a resync instead
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
PING_SECONDS = 30.0  # the listening connection proves it is alive this often

log = structlog.get_logger(__name__)


class TaskEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The one payload on CHANNEL: a task's status changed, its targets moved, or a test invite
    of it was asked for or decided ("trial": the engines and the waiting request look)."""

    task_id: str
    type: Literal["status", "progress", "trial"]
    status: str | None = None  # "status": the task's status now
    reason: str | None = None  # "status": what moved it, when not a step of the state machine (retry_failed)
    requeued: int | None = None  # "progress" from retry-failed: targets put back in the queue

    def encode(self) -> str:
        """The text ``pg_notify`` sends (the fields left unset are left out)."""
        return msgspec.json.encode(self).decode()


class Notice(enum.Enum):
    """What a stream is told besides the events themselves."""

    RESYNC = "resync"  # events may have been missed: send the whole state again
    CLOSING = "closing"  # the process is shutting down: the stream ends


Watcher = Callable[[TaskEvent | None], None]  # None: events may have been missed


class Subscription:
    """Events of one task for one stream; ``wakeup`` is set while some are waiting."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.wakeup = asyncio.Event()
        self._events: deque[TaskEvent | Notice] = deque()

    def push(self, event: TaskEvent | Notice) -> None:
        if _is_progress(event) and self._events and _is_progress(self._events[-1]):
            self._events[-1] = event  # only the newest progress matters
        elif len(self._events) >= MAX_QUEUED:
            self._events.clear()
            self._events.append(Notice.RESYNC)
        else:
            self._events.append(event)
        self.wakeup.set()

    def drain(self) -> list[TaskEvent | Notice]:
        events = list(self._events)
        self._events.clear()
        self.wakeup.clear()
        return events


def _is_progress(event: TaskEvent | Notice) -> bool:
    return isinstance(event, TaskEvent) and event.type == "progress"


class TaskEventHub(BackgroundLoop):
    """The replica's one LISTEN connection, fanned out to in-process watchers and subscriptions."""

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
        self._watchers: list[Watcher] = []
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self.listening = asyncio.Event()
        self.closing = False

    # --- watchers and subscriptions ----------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher`` with every event, and with None whenever events may have been missed
        (now, when already listening: the watcher may have missed what came before)."""
        self._watchers.append(watcher)
        if self.listening.is_set():
            watcher(None)

    def unwatch(self, watcher: Watcher) -> None:
        with contextlib.suppress(ValueError):
            self._watchers.remove(watcher)

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
                subscription.push(Notice.CLOSING)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    def cancel(self) -> None:
        """Stop listening at once, without waiting (an engine aborted as after a kill)."""
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None

    def _dispatch(self, _conn: DbConnection, _pid: int, _channel: str, payload: object) -> None:
        try:
            event = msgspec.json.decode(str(payload), type=TaskEvent)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("task event ignored: not the expected JSON")
            return
        for watcher in list(self._watchers):
            watcher(event)
        for subscription in self._subscriptions.get(event.task_id, ()):
            subscription.push(event)

    def _missed(self) -> None:
        for watcher in list(self._watchers):
            watcher(None)
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.push(Notice.RESYNC)

    # --- the listening connection ------------------------------------------------------

    async def _connect_to_database(self) -> asyncpg.Connection:
        return await asyncpg.connect(await database_url(self._settings))

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        sql = Sql(self._settings.sql_dir)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                with self._clock.busy():
                    conn = await self._connect()
                    lost = asyncio.Event()
                    conn.add_termination_listener(_setter(lost))
                    await conn.add_listener(CHANNEL, self._dispatch)
                self.listening.set()
                self._missed()  # anything published while we were not listening is lost
                delay = RECONNECT_MIN_SECONDS
                # pinged in real time whatever the clock: a connection's liveness is a matter of
                # seconds on the wire, and pings paced by a virtual clock spin as it jumps (an
                # engine test's hub pinged without end and its test never finished)
                while not await _lost_within(lost, PING_SECONDS):
                    await asyncio.wait_for(sql.fetchval(conn, "health.ping"), timeout=PING_SECONDS)
                log.warning("task events: listening connection lost; reconnecting")
            except Exception as exc:  # whatever broke, the replica keeps trying to listen
                log.warning("task events: cannot listen; retrying", error=type(exc).__name__, retry_in=delay)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await self._clock.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


async def _lost_within(lost: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(lost.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _setter(event: asyncio.Event) -> Callable[[DbConnection], None]:
    return lambda _conn: event.set()
