"""The one source of time for the engine: a real clock, or a virtual one for tests.

The virtual clock jumps straight to the next sleeper's deadline as soon as every coroutine
is waiting on the clock and none is inside ``busy()`` (database I/O, say), so a simulated
day of pacing runs in seconds while each coroutine still sees time pass in order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...

    def busy(self) -> AbstractContextManager[None]:
        """Mark work in progress that is not waiting on the clock (I/O)."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for ``event`` at most ``timeout`` clock seconds; True when it was set."""
        ...


async def sleep_until(clock: Clock, when: datetime) -> None:
    await clock.sleep((when - clock.now()).total_seconds())


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def busy(self) -> AbstractContextManager[None]:
        return nullcontext()

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        # asyncio's own timeout around the wait: no helper tasks, for the engine's runners wait
        # like this around a thousand times a second
        with suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await event.wait()
        return event.is_set()


class VirtualClock:
    """Simulated time; starts at ``start`` and only moves when everyone is asleep."""

    def __init__(self, start: datetime | None = None, *, idle_rounds: int = 8) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._idle_rounds = idle_rounds
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._busy = 0
        self._activity = 0
        self._jumper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()  # set while nobody is busy
        self._quiet.set()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (for tests that drive the clock themselves)."""
        self._now += timedelta(seconds=seconds)
        self._release_due()

    async def sleep(self, seconds: float) -> None:
        self._activity += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + timedelta(seconds=seconds), next(self._order), future))
        self._ensure_jumper()
        self._wake.set()
        try:
            await future
        finally:
            self._activity += 1

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        timer = asyncio.ensure_future(self.sleep(timeout))
        try:
            await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return event.is_set()

    @contextmanager
    def busy(self) -> Iterator[None]:
        self._busy += 1
        self._activity += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._busy -= 1
            self._activity += 1
            if not self._busy:
                self._quiet.set()

    def _ensure_jumper(self) -> None:
        if self._jumper is None or self._jumper.done():
            self._jumper = asyncio.get_running_loop().create_task(self._jump_forever(), name="virtual-clock")

    def _release_due(self) -> None:
        while self._sleepers and (self._sleepers[0][0] <= self._now or self._sleepers[0][2].done()):
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _jump_forever(self) -> None:
        while True:
            self._release_due()
            if not self._sleepers:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._busy:  # someone waits on I/O: wait with them instead of spinning the loop
                await self._quiet.wait()
                continue
            if await self._everyone_asleep():
                self._release_due()
                if self._sleepers:
                    self._now = max(self._now, self._sleepers[0][0])
                    self._release_due()

    async def _everyone_asleep(self) -> bool:
        seen = self._activity
        for _ in range(self._idle_rounds):
            await asyncio.sleep(0)
            if self._busy or self._activity != seen:
                return False
        return True
