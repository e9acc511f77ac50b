"""The virtual clock: time moves only when everyone waits on it, in deadline order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from invite.kernel.clock import RealClock, VirtualClock


async def test_sleepers_wake_in_deadline_order_without_real_waiting() -> None:
    clock = VirtualClock()
    start = clock.now()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, (clock.now() - start).total_seconds()))

    await asyncio.wait_for(
        asyncio.gather(sleeper("day", 86400), sleeper("minute", 60), sleeper("hour", 3600)), timeout=5
    )
    assert woke == [("minute", 60.0), ("hour", 3600.0), ("day", 86400.0)]


async def test_time_does_not_jump_while_someone_is_busy() -> None:
    clock = VirtualClock()
    start = clock.now()
    seen_during_io: list[timedelta] = []

    async def io_bound() -> None:
        with clock.busy():
            await asyncio.sleep(0.02)  # real I/O: the clock must hold still
            seen_during_io.append(clock.now() - start)

    async def sleeper() -> None:
        await clock.sleep(600)

    await asyncio.wait_for(asyncio.gather(io_bound(), sleeper()), timeout=5)
    assert seen_during_io == [timedelta(0)]
    assert clock.now() - start == timedelta(seconds=600)


async def test_virtual_wait_returns_early_when_set_and_times_out_otherwise() -> None:
    clock = VirtualClock()
    event = asyncio.Event()
    start = clock.now()
    assert await clock.wait(event, 30) is False
    assert clock.now() - start == timedelta(seconds=30)

    async def set_later() -> None:
        await clock.sleep(5)
        event.set()

    setter = asyncio.create_task(set_later())
    assert await clock.wait(event, 3600) is True
    await setter
    assert clock.now() - start == timedelta(seconds=35)


async def test_real_clock_is_timezone_aware_and_sleeps_zero_for_the_past() -> None:
    clock = RealClock()
    assert clock.now().tzinfo is not None
    await asyncio.wait_for(clock.sleep(-5), timeout=1)


async def test_real_wait_returns_early_when_set_and_times_out_otherwise() -> None:
    clock = RealClock()
    event = asyncio.Event()
    assert await clock.wait(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    started = asyncio.get_running_loop().time()
    assert await clock.wait(event, 60) is True
    assert asyncio.get_running_loop().time() - started < 30  # woken by the event, not the timeout
    assert await clock.wait(event, 0) is True  # already set
