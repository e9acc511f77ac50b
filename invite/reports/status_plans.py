"""What /status adds to a task's counts — the rate, the accounts by state, the ETA — made at
most once per task per ``seconds`` in this process and shared.

A plan reads every account of the task and replays their buckets (``engine/forecast.py``),
which at thousands of accounts costs far more than the counts; a status page polls every few
seconds and many may watch one task. So one plan serves every request of its interval, also
while it is being made; once the interval is over and it is made, the next request has it made
anew and is answered, like the requests until that one is ready, from the last one (never
older than the interval and the making). While one is still being made past its interval no
other is begun, the requests answered from the last one until it is ready: slow plans would
otherwise pile up in the default thread pool, each making the others slower. A plan is for
one status of the task: after a pause or a resume the requests wait for the new one. A plan
that failed is not kept: the next request makes it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from invite.tasks.states import TaskStatus


class Planned(NamedTuple):
    rate_per_hour: float
    accounts: dict[str, int]
    eta: datetime | None
    limited_by: list[str]


@dataclass(frozen=True)
class _Kept:
    at: datetime  # when its making began
    status: TaskStatus  # the task's status it is made for
    making: asyncio.Future[Planned]
    served: Planned | None  # the previous plan of that status, answered while this one is made


class StatusPlans:
    """Tasks' /status plans, the most recently made ``most`` of them."""

    def __init__(self, seconds: float, most: int) -> None:
        self._interval = timedelta(seconds=seconds)
        self._most = most
        self._kept: dict[object, _Kept] = {}  # oldest first

    async def get(
        self, key: object, status: TaskStatus, now: datetime, make: Callable[[], Awaitable[Planned]]
    ) -> Planned:
        """The plan of the task ``key`` in ``status`` at ``now``: the one kept, else ``make()``'s."""
        kept = self._kept.get(key)
        if kept is not None and kept.status != status:
            kept = None  # made for the task as it was
        if kept is None or (now - kept.at >= self._interval and kept.making.done()):
            kept = self._keep(key, _Kept(now, status, asyncio.ensure_future(make()), _last(kept)))
        if kept.served is not None and not kept.making.done():
            return kept.served
        return await asyncio.shield(kept.making)

    def _keep(self, key: object, kept: _Kept) -> _Kept:
        self._kept.pop(key, None)  # now the newest
        self._kept[key] = kept
        while len(self._kept) > self._most:
            del self._kept[next(iter(self._kept))]

        def forget_failure(making: asyncio.Future[Planned]) -> None:
            if (making.cancelled() or making.exception() is not None) and self._kept.get(key) is kept:
                del self._kept[key]

        kept.making.add_done_callback(forget_failure)
        return kept


def _last(kept: _Kept | None) -> Planned | None:
    """The newest plan ``kept`` holds made: its own once made, else the one it serves meanwhile."""
    if kept is None:
        return None
    if kept.making.done() and not kept.making.cancelled() and kept.making.exception() is None:
        return kept.making.result()
    return kept.served
