"""Group commit: the outcomes of many actions in one transaction, a few milliseconds later.

What had to be durable before the platform call (the in-flight mark and the quota
reservation) was committed by the claim. An outcome can wait for company: a crash in between
leaves its target in flight, which the recovery rules already handle (an uncertain message,
a retried invite). One transaction writes the targets, the execution log, the accounts, the
task-account rows, the breaker's verdict and one progress event per task.

When PostgreSQL is away the recorder keeps its outcomes in memory and tries again, with a
``backoff()`` on the injected clock, for as long as it takes. Meanwhile it is not ``writable`` (nor while a full batch waits), and the
account runners act on nothing more: no outcome is made that could not be written, and what
it holds stays bounded by a batch plus one action per driven account.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

import structlog

from invite.engine import breaker
from invite.engine.decisions import KEPT_TASK_ACCOUNT_STATUSES
from invite.engine.opt_outs import check as check_opt_outs
from invite.engine.registry import Registry
from invite.engine.repository import DATABASE_AWAY, Repository
from invite.engine.statuses import AccountStatus, LinkState, TargetStatus, TaskAccountStatus
from invite.kernel.clock import Clock
from invite.kernel.events import TaskEvent
from invite.kernel.settings import Settings
from invite.observability.metrics import breaker_trips, record_batch_size, targets_processed, tasks_total
from invite.platforms.base import AccountEvent, AccountsProvider
from invite.tasks.states import TaskStatus

log = structlog.get_logger(__name__)

ERROR_PAUSE = 0.25  # the first pause after a database error; it doubles up to ERROR_PAUSE_MAX
ERROR_PAUSE_MAX = 5.0
_CLOSING_ATTEMPTS = 3
_T = TypeVar("_T")
# the statuses that end a target the engine acted on (counted as processed, by outcome)
FINAL = frozenset({TargetStatus.SUCCEEDED, TargetStatus.SKIPPED, TargetStatus.FAILED, TargetStatus.UNCERTAIN})


@dataclass(slots=True)
class TargetOutcome:
    id: uuid.UUID
    claimed: int  # the attempt number of the claim this outcome belongs to
    status: TargetStatus
    outcome: str
    processed_at: datetime | None
    error_message: str | None
    result: dict[str, Any]
    attempts: int
    next_attempt_at: datetime | None  # None: at the head of the queue (decisions.Decision.ahead)
    link_state: LinkState | None = None  # None: as it was (decisions.Decision.link)


@dataclass(slots=True)
class LogRow:
    target_id: uuid.UUID | None
    account_id: str
    action: str
    status: str
    details: dict[str, Any]
    at: datetime
    # chosen here, so a batch written again after a commit whose answer was lost adds no row twice
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(slots=True)
class AccountChange:
    id: str
    status: AccountStatus
    reason: str | None
    cooldown_until: datetime | None
    multiplier: float
    flood_waits: int = 0
    peer_floods: int = 0
    warmup_since: datetime | None = None  # its clean history starts again here (warmup.py)


@dataclass(slots=True)
class TaskAccountChange:
    status: TaskAccountStatus
    reason: str | None
    cooldown_until: datetime | None
    stats: dict[str, int] = field(default_factory=dict)
    last_used_at: datetime | None = None


@dataclass(slots=True)
class Entry:
    """Everything one action (or one check) changes."""

    task_id: uuid.UUID
    platform: str
    user_id: str
    account_id: str
    target: TargetOutcome | None = None
    log: LogRow | None = None
    account: AccountChange | None = None
    task_account: TaskAccountChange | None = None
    blocked_reason: str | None = None  # the account died: blocked in every task
    pause_reason: str | None = None  # the task must pause (the chat refuses)
    breaker: bool = False  # an error the circuit breaker counts
    report: tuple[AccountEvent, str] | None = None  # told to the accounts provider
    opt_out: tuple[str, str] | None = None  # (person's key, why): onto the tenant's suppression list


class Recorder:
    def __init__(
        self,
        repo: Repository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        accounts: AccountsProvider,
        refresh: Callable[[], None],
    ) -> None:
        self._repo = repo
        self._lane = repo.lane()
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._accounts = accounts
        self._refresh = refresh
        self._entries: list[Entry] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._added = 0
        self._committed = 0
        self._ledger = _Ledger()
        self._barriers = 0  # flush() requests waiting to be part of a commit
        self._running = False
        self._stopping = False
        self._progress = asyncio.Event()
        self._reports: set[asyncio.Task[None]] = set()
        self._failing = False

    @property
    def failing(self) -> bool:
        """The last try to write failed: the database is away."""
        return self._failing

    @property
    def writable(self) -> bool:
        """Outcomes can be committed now: the database answered the last write and no full
        batch waits. When it turns writable again the registry's ``changed`` fires."""
        return not self._failing and len(self._entries) < self._settings.record_batch_max

    def add(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._added += 1
        self._arrived.set()
        if len(self._entries) >= self._settings.record_batch_max:
            self._full.set()

    async def flush(self) -> None:
        """Return once everything added so far is committed, counters of every account included."""
        self._barriers += 1
        self._added += 1
        goal = self._added
        if not self._running:  # no loop to do it (not started, or stopped): commit here
            await self._commit_batch(attempts=_CLOSING_ATTEMPTS)
            return
        self._arrived.set()
        self._full.set()
        while self._committed < goal:
            progress = self._progress
            await progress.wait()

    async def run(self) -> None:
        """Commit batches until ``stop()``: the batch in hand is finished, never cut off mid-commit."""
        self._running = True
        try:
            while not self._stopping:
                await self._arrived.wait()
                await self._clock.wait(self._full, self._settings.record_batch_window_seconds)
                await self._commit_batch(attempts=None)
        finally:
            self._running = False

    def stop(self) -> None:
        """Let ``run`` end after one more commit; from now on a database that is away gets a few tries."""
        self._stopping = True
        self._arrived.set()
        self._full.set()

    async def close(self) -> None:
        """Commit what is left (a few tries), and wait for the reports to the provider."""
        while self._entries:
            if not await self._commit_batch(attempts=_CLOSING_ATTEMPTS):
                break
        await self._lane.close()
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)

    async def _commit_batch(self, attempts: int | None) -> bool:
        held_back = not self.writable
        batch, self._entries = self._entries, []
        barriers, self._barriers = self._barriers, 0
        self._arrived.clear()
        self._full.clear()
        self._ledger.add(batch)
        everything = barriers > 0
        applied = await self._retrying(
            "write", lambda b: self._write(b, everything=everything), batch, attempts
        )
        if applied is None:
            self._entries = batch + self._entries
            self._barriers += barriers
            return False
        self._committed += len(batch) + barriers
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()
        paused = await self._retrying("follow-up", self._follow_up, batch, attempts) or {}
        self._after_commit(batch, applied, paused)
        if held_back and self.writable:
            self._registry.bump()
        return True

    async def _retrying(
        self,
        name: str,
        step: Callable[[list[Entry]], Awaitable[_T]],
        batch: list[Entry],
        attempts: int | None,
    ) -> _T | None:
        tried = 0
        pauses = backoff()
        while True:
            tried += 1
            try:
                done = await step(batch)
            except DATABASE_AWAY as exc:
                self._failing = True
                log.error(
                    "group commit failed",
                    step=name,
                    error=repr(exc),
                    entries=len(batch),
                    attempt=tried,
                )
                limit = _CLOSING_ATTEMPTS if self._stopping else attempts
                if limit is not None and tried >= limit:
                    return None
                await self._clock.sleep(next(pauses))
                continue
            self._failing = False
            return done

    async def _write(self, batch: list[Entry], *, everything: bool) -> set[uuid.UUID]:
        """The outcomes, in one statement; the ids of the targets it applied to."""
        targets = [e.target for e in batch if e.target is not None]
        logs = [(e.task_id, e.log) for e in batch if e.log is not None]
        accounts = _merge_accounts(batch)
        now = self._clock.now()
        task_accounts = self._ledger.due(
            now, self._settings.task_stats_interval_seconds, everything=everything
        )
        if not (targets or logs or accounts or task_accounts):
            return set()
        events = [task_event(task_id, "progress") for task_id in dict.fromkeys(e.task_id for e in batch)]
        recorded = await self._lane.record(
            replica=self._settings.replica_id,
            targets=targets,
            logs=logs,
            accounts=accounts,
            task_accounts=task_accounts,
            events=events,
            now=now,
            kept=KEPT_TASK_ACCOUNT_STATUSES,
        )
        self._ledger.written(task_accounts, now)
        return set(recorded.applied)

    async def _follow_up(self, batch: list[Entry]) -> dict[uuid.UUID, tuple[str, str]]:
        """What only some batches need: dead accounts blocked everywhere, opt-outs onto the
        suppression list, the breaker and the opt-out check, pauses."""
        blocked = {e.account_id: e.blocked_reason for e in batch if e.blocked_reason is not None}
        pauses = {
            e.task_id: ("chat_unavailable", e.pause_reason) for e in batch if e.pause_reason is not None
        }
        suspects = {e.task_id for e in batch if e.breaker} - pauses.keys()
        opt_outs: dict[str, dict[str, str]] = {}  # tenant → person's key → why
        for e in batch:
            if e.opt_out is not None:
                opt_outs.setdefault(e.user_id, {})[e.opt_out[0]] = e.opt_out[1]
        if not (blocked or pauses or suspects or opt_outs):
            return {}
        now = self._clock.now()

        async def follow_up(tx: Repository) -> dict[uuid.UUID, tuple[str, str]]:
            if blocked:
                await tx.block_task_accounts(status=TaskAccountStatus.BLOCKED, reasons=blocked)
            for user_id, people in opt_outs.items():  # as the suppression API adds them (one rule)
                await tx.lock_tenant(user_id=user_id)
                keys = list(people)
                await tx.suppress(user_id=user_id, keys=keys, reason="; ".join(set(people.values())), now=now)
                await tx.skip_pending_targets(user_id=user_id, keys=keys, now=now)
            tripped = {}  # the breaker's pauses, found anew should the transaction be tried again
            for task_id in suspects:
                verdict = await breaker.check(tx, task_id, self._settings)
                if verdict is not None:
                    tripped[task_id] = verdict
            for task_id in (
                {e.task_id for e in batch if e.opt_out is not None} - tripped.keys() - pauses.keys()
            ):
                verdict = await check_opt_outs(tx, task_id, self._settings)  # too many blocks?
                if verdict is not None:
                    tripped[task_id] = verdict
            paused: dict[uuid.UUID, tuple[str, str]] = {}
            for task_id, (why, reason) in (pauses | tripped).items():
                if await tx.pause_task(task_id=task_id, reason=reason, now=now):
                    paused[task_id] = (why, reason)
            if paused:
                await tx.notify(events=[task_event(t, "status", status=TaskStatus.PAUSED) for t in paused])
            return paused

        return await self._repo.transaction(follow_up)

    def _after_commit(
        self, batch: list[Entry], applied: set[uuid.UUID], paused: dict[uuid.UUID, tuple[str, str]]
    ) -> None:
        record_batch_size.observe(len(batch))
        finished: dict[tuple[str, str], int] = {}
        for entry in batch:
            target = entry.target
            if target is not None and target.id in applied:
                if target.status in FINAL:
                    key = (entry.platform, target.outcome)
                    finished[key] = finished.get(key, 0) + 1
                elif target.status == TargetStatus.PENDING:  # due when it says, or at once (ahead)
                    self._registry.note_work(entry.task_id, target.next_attempt_at or self._clock.now())
            if entry.report is not None:
                self._report(entry.account_id, entry.user_id, *entry.report)
        for (platform, outcome), n in finished.items():
            targets_processed.labels(platform=platform, result=outcome).inc(n)
        platforms = {e.task_id: e.platform for e in batch}
        for task_id, (why, reason) in paused.items():
            log.warning("task paused", task_id=str(task_id), reason=reason)
            tasks_total.labels(platform=platforms[task_id], status=TaskStatus.PAUSED).inc()
            if why != "chat_unavailable":
                breaker_trips.labels(reason=why).inc()
            self._registry.drop_task(task_id)
        if paused:
            self._refresh()

    def _report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None:
        async def report() -> None:
            try:
                with self._clock.busy():  # the platform hears of it at once, in simulated time too
                    await self._accounts.report(account_id, user_id, event, message)
            except Exception as exc:  # the platform hears of it next time; the engine goes on
                log.warning("account event not reported", account_id=account_id, event=event, error=repr(exc))

        task = asyncio.get_running_loop().create_task(report())
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)


def _merge_accounts(batch: list[Entry]) -> list[AccountChange]:
    """One change per account: its latest state, the counters summed (the batch is left as it
    was, so a retried write counts nothing twice)."""
    merged: dict[str, AccountChange] = {}
    for entry in batch:
        change = entry.account
        if change is None:
            continue
        before = merged.get(change.id)
        if before is not None:
            change = dataclasses.replace(
                change,
                flood_waits=change.flood_waits + before.flood_waits,
                peer_floods=change.peer_floods + before.peer_floods,
                warmup_since=change.warmup_since or before.warmup_since,
            )
        merged[change.id] = change
    return [merged[k] for k in sorted(merged)]


class _Ledger:
    """Per task and account, what invite_task_accounts has not heard yet.

    Counters are merged here and written when the account's state in the task changes, when
    they are ``interval`` old, and on every flush() (release, shutdown) — not on every batch,
    which would rewrite one row per account per batch.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[uuid.UUID, str], TaskAccountChange] = {}
        self._status: dict[tuple[uuid.UUID, str], tuple[TaskAccountStatus, datetime]] = {}

    def add(self, batch: list[Entry]) -> None:
        for entry in batch:
            change = entry.task_account
            if change is None:
                continue
            entry.task_account = None  # the ledger has it now: a retried batch is not counted twice
            key = (entry.task_id, entry.account_id)
            before = self._pending.get(key)
            if before is not None:
                for kind, n in before.stats.items():
                    change.stats[kind] = change.stats.get(kind, 0) + n
                change.last_used_at = change.last_used_at or before.last_used_at
            self._pending[key] = change

    def due(
        self, now: datetime, interval: float, *, everything: bool
    ) -> list[tuple[tuple[uuid.UUID, str], TaskAccountChange]]:
        ready = []
        for key, change in self._pending.items():
            last = self._status.get(key)
            if (
                everything
                or last is None
                or last[0] != change.status
                or (now - last[1]).total_seconds() >= interval
            ):
                ready.append((key, change))
        return sorted(ready, key=lambda kv: (str(kv[0][0]), kv[0][1]))

    def written(self, changes: list[tuple[tuple[uuid.UUID, str], TaskAccountChange]], now: datetime) -> None:
        for key, change in changes:
            if self._pending.get(key) is change:
                del self._pending[key]
            self._status[key] = (change.status, now)


def backoff() -> Iterator[float]:
    """Pauses between tries at a database that is away: doubling from ERROR_PAUSE, capped."""
    pause = ERROR_PAUSE
    while True:
        yield pause
        pause = min(pause * 2, ERROR_PAUSE_MAX)


def task_event(task_id: uuid.UUID, kind: Literal["status", "progress"], status: str | None = None) -> str:
    """A task's notification on invite_task_events (progress, or a status change)."""
    return TaskEvent(task_id=str(task_id), type=kind, status=status).encode()
