"""The batched claimer: one per replica, one claim statement per task per batch.

Ready account coroutines ask for a target; the claimer gathers the asks for a few
milliseconds (or until a batch is full), groups them by task, runs the claim statement once
per task for all of that task's accounts, and hands the targets out in memory. One
statement for k accounts instead of k statements: this is what keeps the claim cheap and
its plan stable as the queue drains (PERF-NOTES.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Limits
from invite.engine.decisions import EngineOutcome
from invite.engine.outcomes import refused, short_of_room
from invite.engine.registry import Registry, RunningTask
from invite.engine.repository import CONNECTION_LOST, DATABASE_AWAY, ClaimingAccount, Lane, Repository
from invite.engine.statuses import LinkState
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings
from invite.observability.metrics import claim_seconds, lost_claim_targets

log = structlog.get_logger(__name__)

# A short claim whose missing targets are only locked by someone else: look again soon.
_RECHECK = timedelta(milliseconds=50)
_ERROR_PAUSE = 1.0
# Two claims in flight: one in the database while the next batch gathers and the accounts of
# the previous one act, so Python and PostgreSQL work at the same time.
_LANES = 2


@dataclass(frozen=True, slots=True)
class Claim:
    target_id: uuid.UUID
    key: str  # the person's identifier_key
    data: dict[str, Any]
    attempts: int  # this claim's attempt number: the recorder writes back only to it
    at: datetime  # when the quota was reserved (the action's time in the log)
    link_due: bool = False  # the action is the message with a one-use invite link (links.py)


@dataclass(frozen=True, slots=True)
class _Lost:
    """A claim whose answer the connection lost: it may have committed."""

    id: uuid.UUID
    at: datetime
    expires_at: datetime


@dataclass(slots=True)
class _Ask:
    task: RunningTask
    account: LeasedAccount
    limits: Limits
    answer: asyncio.Future[Claim | None]


class Claimer:
    def __init__(
        self,
        repo: Repository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        refresh: Callable[[], None],
        drained: Callable[[], None],
    ) -> None:
        self._repo = repo
        # every lane, wherever it is: a batch cancelled before it starts never puts its lane back
        self._all_lanes = [repo.lane() for _ in range(_LANES)]
        self._lanes: asyncio.Queue[Lane] = asyncio.Queue()
        for lane in self._all_lanes:
            self._lanes.put_nowait(lane)
        self._batches: set[asyncio.Task[None]] = set()
        self._refresh = refresh  # asks for a fresh picture of tasks and accounts
        self._drained = drained  # a task has nothing pending left: it may be complete
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._asks: list[_Ask] = []
        self._lost: list[_Lost] = []  # put back before the next claim
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = False

    async def claim(self, task: RunningTask, account: LeasedAccount, limits: Limits) -> Claim | None:
        """A target of ``task`` for ``account`` with its quota reserved, or None (none, or refused)."""
        if self._closed:
            return None
        answer: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._asks.append(_Ask(task, account, limits, answer))
        self._arrived.set()
        if len(self._asks) >= min(self._settings.claim_batch_max, self._registry.driven):
            self._full.set()  # everyone who could ask has asked: no reason to wait for the window
        return await answer

    def close(self) -> None:
        """Stop handing out targets: every waiting ask gets None."""
        self._closed = True
        _refuse_unanswered(self._asks)
        self._asks = []

    async def run(self) -> None:
        try:
            await self._serve()
            # closed: the batches in flight still answer their asks (a claim they commit is an
            # action in hand, which the runner finishes); only cancellation cuts them short
            await asyncio.gather(*self._batches)
        finally:
            for batch in self._batches:
                batch.cancel()
            await asyncio.gather(*self._batches, return_exceptions=True)
            try:  # the last word on a lost claim while the database may answer
                await self._release_lost(self._all_lanes[0])
            except DATABASE_AWAY as exc:
                log.warning("lost claims left to recovery", claims=len(self._lost), error=repr(exc))
            for lane in self._all_lanes:
                await lane.close()

    async def _serve(self) -> None:
        while not self._closed:
            await self._arrived.wait()
            await self._clock.wait(self._full, self._settings.claim_batch_window_seconds)
            lane = await self._lanes.get()  # both in flight: the asks keep gathering meanwhile
            size = self._settings.claim_batch_max
            batch, self._asks = self._asks[:size], self._asks[size:]
            if len(self._asks) < size:
                self._full.clear()
            if not self._asks:
                self._arrived.clear()
            running = asyncio.get_running_loop().create_task(self._claim_batch(lane, batch))
            self._batches.add(running)
            running.add_done_callback(self._batches.discard)

    async def _claim_batch(self, lane: Lane, batch: list[_Ask]) -> None:
        try:
            by_task: defaultdict[uuid.UUID, list[_Ask]] = defaultdict(list)
            for ask in batch:
                by_task[ask.task.id].append(ask)
            failed = False
            try:
                await self._release_lost(lane)
            except DATABASE_AWAY as exc:
                log.error("lost claim not released", claims=len(self._lost), error=repr(exc))
                failed = True  # no claim before: a target may not be claimed twice in memory
            for asks in by_task.values() if not failed else ():  # one statement per task
                try:
                    await self._claim_task(lane, asks)
                except DATABASE_AWAY as exc:
                    log.error("claim failed", task_id=str(asks[0].task.id), error=repr(exc))
                    failed = True
            _refuse_unanswered(batch)
            if failed:
                await self._clock.sleep(_ERROR_PAUSE)
        finally:
            _refuse_unanswered(batch)  # cancelled midway too: no runner waits for an answer forever
            self._lanes.put_nowait(lane)

    async def _claim_task(self, lane: Lane, asks: list[_Ask]) -> None:
        asks.sort(key=lambda a: a.account.id)
        task = asks[0].task
        now = self._clock.now()
        lost = _Lost(uuid.uuid4(), now, now + timedelta(seconds=self._settings.target_lease_seconds))
        started = time.perf_counter()
        try:
            result = await lane.claim(
                task_id=task.id,
                now=now,
                replica=self._settings.replica_id,
                accounts=[_claiming(a, self._settings, now) for a in asks],
                expires_at=lost.expires_at,
                recontact_days=task.recontact_days(self._settings.recontact_days),
                contacts_cap=self._settings.daily_contacts_quota,
                claim_id=lost.id,
            )
        except CONNECTION_LOST:  # sent, perhaps committed, never answered
            self._lost.append(lost)
            raise
        claim_seconds.observe(time.perf_counter() - started)
        available = result.available
        if not result.running:  # paused, cancelled or finished since the registry was loaded
            self._registry.drop_task(task.id)
            self._refresh()
            return
        claimed = {row.account_id: row for row in result.claimed}
        paired = set(result.paired)
        refused: list[LeasedAccount] = []
        full: list[LeasedAccount] = []
        for ask in asks:
            row = claimed.get(ask.account.id)
            if row is not None:
                ask.answer.set_result(
                    Claim(
                        row.id,
                        row.identifier_key,
                        row.user_data or {},
                        row.attempts,
                        now,
                        row.link_state == LinkState.DUE,
                    )
                )
            elif ask.account.id in paired:
                refused.append(ask.account)
            elif result.phones_left or result.links_left:  # only targets it has no room for were left
                full.append(ask.account)
        if available < len(asks):
            self._mark_idle(task, now, result.next_due)
        if refused or full:
            await self._reload(refused, full, now, links=result.links_left > 0 and not result.phones_left)

    async def _release_lost(self, lane: Lane) -> None:
        """Put back what the claims whose answer was lost put in flight: no account was handed
        it, so nothing was done to anyone (decisions.CLAIM_LOST). Before any other claim."""
        while self._lost:
            lost = self._lost[0]
            now = self._clock.now()
            released = await lane.release_lost_claim(
                claim_id=lost.id, claimed_at=lost.at, expires_at=lost.expires_at, now=now
            )
            self._lost.remove(lost)
            if released:
                lost_claim_targets.inc(len(released))
                log.warning(
                    "lost claim put back",
                    claim_id=str(lost.id),
                    targets=len(released),
                    refunded=released[0].refunded,
                )
            for task_id in {row.task_id for row in released}:
                self._registry.note_work(task_id, now)

    def _mark_idle(self, task: RunningTask, now: datetime, due: datetime | None) -> None:
        if due is None:  # nothing pending: wait for a requeue, a notification or the poll
            until = now + timedelta(seconds=self._settings.poll_interval_seconds)
            self._drained()
        else:
            until = max(due, now + _RECHECK)
        self._registry.mark_idle(task.id, until)

    async def _reload(
        self, accounts: list[LeasedAccount], full: list[LeasedAccount], now: datetime, *, links: bool = False
    ) -> None:
        """The database refused these accounts' reservations, or found only targets the
        ``full`` ones have no room for -- +phone targets for their contacts windows, or (``links``)
        one-use links for their link quota: take its word for their state."""
        by_id = {a.id: a for a in accounts + full}
        short = {a.id for a in full}
        try:
            rows = await self._repo.account_state(replica=self._settings.replica_id, account_ids=list(by_id))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("account state reload failed", error=repr(exc))
            return
        for row in rows:
            account = by_id[row.id]
            account.load(row)
            if row.id in short:
                if links:
                    short_of_room(
                        self._settings, account, row.held, row.daily_open_at, now, EngineOutcome.LINKS_FULL
                    )
                else:
                    short_of_room(self._settings, account, row.held, row.contacts_open_at, now)
            else:
                refused(self._settings, account, row.held, now)  # as the decision table's REFUSED says
        self._refresh()
        self._registry.bump()


def _claiming(ask: _Ask, settings: Settings, now: datetime) -> ClaimingAccount:
    limits, task = ask.limits, ask.task
    link_cap = ask.account.link_cap(task, settings, now) if task.offers_link else None
    return ClaimingAccount(ask.account.id, limits.cap, limits.min_pause, link_cap)


def _refuse_unanswered(asks: list[_Ask]) -> None:
    for ask in asks:
        if not ask.answer.done():
            ask.answer.set_result(None)
