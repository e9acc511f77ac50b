"""LISTEN invite_task_events on a connection of its own, so idle account coroutines wake on
start, resume, pause and cancel at once; reconnects when the database goes away. Polling
(``poll_interval_seconds``) remains the fallback for anything missed meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import asyncpg
import msgspec
import structlog

from invite.kernel.clock import Clock

log = structlog.get_logger(__name__)

CHANNEL = "invite_task_events"
_MAX_BACKOFF = 30.0


class Listener:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, on_event: Callable[[], None]) -> None:
        self._pool = pool
        self._clock = clock
        self._on_event = on_event
        self.connected = asyncio.Event()  # for tests and readiness: listening now

    async def run(self) -> None:
        backoff = 1.0
        while True:
            lost = asyncio.Event()
            conn: asyncpg.pool.PoolConnectionProxy | None = None
            try:
                with self._clock.busy():
                    conn = await self._pool.acquire()
                    await conn.add_listener(CHANNEL, self._notified)
                conn.add_termination_listener(functools.partial(_set, lost))
                self.connected.set()
                self._on_event()  # whatever happened while we were not listening
                backoff = 1.0
                await lost.wait()
                log.warning("listener connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listener cannot connect", error=repr(exc))
            finally:
                self.connected.clear()
                if conn is not None:
                    await self._let_go(conn)
            await self._clock.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _let_go(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        try:
            with self._clock.busy():
                if not conn.is_closed():
                    await conn.remove_listener(CHANNEL, self._notified)
                await self._pool.release(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.debug("listener connection released with an error", error=repr(exc))

    def _notified(
        self,
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        try:
            event = msgspec.json.decode(str(payload))
        except msgspec.DecodeError:
            return
        if isinstance(event, dict) and event.get("type") == "progress":
            return  # our own group commits and other replicas': nothing to wake for
        self._on_event()


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()
