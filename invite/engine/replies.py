"""Replies to message tasks: what people wrote back to the accounts, read a few minutes apart.

The accounts worth a poll are those attached to a message task running or paused, or one that
ended less than ``REPLIES_WATCH_HOURS`` ago, and those with a one-use invite link still open
(replies.watched_accounts). Every ``REPLIES_POLL_SECONDS`` one loop per replica visits those
its lease keeper holds (``LeaseKeeper.held``), and another those no replica holds -- once its
last task ends, an account is let go of, and people answer for a day after: each is read under
a short lease of its own (``ShortLeases``, followup.py: our lease and the accounts provider's,
given back at once; one busy elsewhere is skipped this round, one held by another replica is
left to it), a few at a time. Each account's driver is asked what people wrote to it since its
last read (``read_replies``; an account's first read here goes back to its tasks' start, the
watch window at most). A FloodWait rests that account's polls for as long (nothing else about
the account changes: the poll is not an action); any other failure is tried again next round.
Polls run side by side, a few at a time.

What is read is matched, in one transaction, to the targets that account messaged
(replies.mark_replied): the target is marked replied, with the time, and the per-task,
per-account counters that /stats shows count it. The text is only read for the stop words
(``StopWords``: REPLY_STOP_WORDS, casefolded, whole words and phrases) and never stored. A
reply that says stop marks the target opted out and puts the person, under the target's key
and every key the reply named them by, on the tenant's suppression list the way a block does
(suppressions.add, skip_pending_targets: no other task or account contacts them again); then
the opt-out check (opt_outs.py) may pause the task. Reading something again changes nothing.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

import structlog

from invite.engine import opt_outs
from invite.engine.account import LeasedAccount
from invite.engine.context import EngineContext
from invite.engine.followup import ShortLeases
from invite.engine.recorder import task_event
from invite.engine.reply_rows import MarkedReply, OptedOut, ReplySeen, Unheld
from invite.engine.repository import Repository
from invite.engine.statuses import TargetStatus
from invite.observability.metrics import breaker_trips
from invite.platforms.base import InviteStrategy, OutcomeKind, Reply
from invite.tasks.states import TaskStatus

log = structlog.get_logger(__name__)

AT_ONCE = 16  # polls side by side
# the targets a reply may answer: a message delivered, or one in doubt (a reply proves it arrived)
ANSWERED = (TargetStatus.SUCCEEDED, TargetStatus.UNCERTAIN)
OPT_OUT_REASON = "opted out: replied asking not to be written to again"
_WORD = re.compile(r"\w+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.casefold().replace("ё", "е")))


class StopWords:
    """Whether a reply asks to stop: one of the phrases, casefolded (ё as е), as whole words in a row."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = [words for words in map(_words, phrases) if words]

    def said(self, text: str) -> bool:
        words = _words(text)
        return any(
            words[i : i + len(phrase)] == phrase
            for phrase in self._phrases
            for i in range(len(words) - len(phrase) + 1)
        )


class RepliesPoller:
    def __init__(
        self,
        ctx: EngineContext,
        held: Callable[[], Iterable[LeasedAccount]],
        refresh: Callable[[], None],
        short: ShortLeases | None = None,
    ) -> None:
        self._ctx = ctx
        self._held = held
        self._refresh = refresh
        self._short = short  # None: only the accounts held here are read
        self._stop = StopWords(ctx.settings.stop_phrases)
        self._read_at: dict[str, datetime] = {}  # account → when its last successful read began
        self._unheld_read_at: dict[str, datetime] = {}  # the same, for reads under a short lease
        self._rest: dict[str, datetime] = {}  # account → no poll before (a FloodWait)

    async def run(self) -> None:
        """The held accounts' round and the unheld ones', each every REPLIES_POLL_SECONDS: a slow
        round of short leases (a client to start for each) never holds back the other."""
        rounds = [self._every(self.tick, "replies poll failed")]
        if self._short is not None:
            rounds.append(self._every(self.tick_unheld, "replies poll of unheld accounts failed"))
        await asyncio.gather(*rounds)

    async def _every(self, tick: Callable[[], Awaitable[None]], failed: str) -> None:
        every = self._ctx.settings.replies_poll_seconds
        while True:
            await self._ctx.clock.sleep(every)
            try:
                await tick()
            except Exception:  # the database is away, most likely: next round
                log.exception(failed)

    async def tick(self) -> None:
        """One round: every held account worth it polled once (those resting skipped)."""
        ctx = self._ctx
        now = ctx.clock.now()
        self._rest = {k: until for k, until in self._rest.items() if until > now}
        held = {a.id: a for a in self._held()}
        self._read_at = {k: at for k, at in self._read_at.items() if k in held}  # a new holder starts over
        ready = {k: a for k, a in held.items() if a.driving and a.held and k not in self._rest}
        if not ready:
            return
        watched = await ctx.repo.watched_accounts(
            account_ids=sorted(ready), now=now, watch_seconds=ctx.settings.replies_watch_hours * 3600
        )
        at_once = asyncio.Semaphore(AT_ONCE)

        async def one(account: LeasedAccount, start: datetime) -> None:
            async with at_once:
                try:
                    since = max(start, self._read_at.get(account.id, start))
                    await self._poll(account.id, account.strategy, since, self._read_at)
                except Exception as exc:  # the database is away, most likely: read again next round
                    log.warning("replies not recorded", account_id=account.id, error=repr(exc))

        await asyncio.gather(*(one(ready[row.account_id], row.since) for row in watched))

    async def tick_unheld(self) -> None:
        """One round of the accounts worth a poll that no replica holds (a message task of theirs
        ended within the watch window, or a link of theirs is open): each read once under a
        short lease (followup.py); one busy elsewhere is skipped this round."""
        short = self._short
        if short is None:
            return
        ctx = self._ctx
        now = ctx.clock.now()
        self._rest = {k: until for k, until in self._rest.items() if until > now}
        held = [a.id for a in self._held()]
        unheld = await ctx.repo.unheld_watched(
            driver=short.driver,
            now=now,
            watch_seconds=ctx.settings.replies_watch_hours * 3600,
            avoid=sorted({*held, *self._rest}),
        )
        watched = {row.account_id for row in unheld}
        self._unheld_read_at = {k: at for k, at in self._unheld_read_at.items() if k in watched}

        async def one(row: Unheld) -> None:
            since = max(row.since, self._unheld_read_at.get(row.account_id, row.since))

            async def poll(strategy: InviteStrategy) -> None:
                await self._poll(row.account_id, strategy, since, self._unheld_read_at)

            try:
                await short.read(row.account_id, poll)
            except Exception as exc:  # the database is away, most likely: read again next round
                log.warning("replies not recorded", account_id=row.account_id, error=repr(exc))

        await asyncio.gather(*(one(row) for row in unheld))

    async def _poll(
        self, account_id: str, strategy: InviteStrategy, since: datetime, read_at: dict[str, datetime]
    ) -> None:
        """Read the account's replies since ``since`` and record them; ``read_at`` learns when
        this read began if it went through."""
        ctx = self._ctx
        asked = ctx.clock.now()
        try:
            with ctx.clock.busy():
                answer = await strategy.read_replies(since)
        except Exception as exc:  # a driver answers, never raises; this one did: next round
            log.warning("replies not read: driver error", account_id=account_id, error=repr(exc))
            return
        outcome = answer.outcome
        if outcome.kind is OutcomeKind.FLOOD_WAIT:
            self._rest[account_id] = asked + timedelta(seconds=outcome.seconds)
            log.info("replies poll rests", account_id=account_id, seconds=outcome.seconds)
            return
        if outcome.kind is not OutcomeKind.SUCCESS:
            log.info(
                "replies not read", account_id=account_id, outcome=str(outcome.kind), detail=outcome.detail
            )
            return
        if answer.replies:
            await self._record(account_id, answer.replies)
        read_at[account_id] = asked

    async def _record(self, account_id: str, replies: list[Reply]) -> None:
        ctx = self._ctx
        seen = [ReplySeen(list(r.keys), r.at) for r in replies]
        stops = [ReplySeen(list(r.keys), r.at) for r in replies if self._stop.said(r.text)]
        statuses = [str(s) for s in ANSWERED]
        now = ctx.clock.now()

        async def write(
            tx: Repository,
        ) -> tuple[list[MarkedReply], list[OptedOut], dict[uuid.UUID, tuple[str, str]]]:
            replied = await tx.mark_replied(account_id=account_id, replies=seen, statuses=statuses)
            stopped = (
                await tx.mark_opted_out(account_id=account_id, replies=stops, statuses=statuses)
                if stops
                else []
            )
            people: dict[str, dict[str, None]] = {}  # tenant → the keys to suppress, in order
            for row in stopped:
                people.setdefault(row.user_id, {}).update(dict.fromkeys([row.identifier_key, *row.keys]))
            for user_id, keys in people.items():  # as the suppression API adds them (one rule)
                await tx.lock_tenant(user_id=user_id)
                await tx.suppress(user_id=user_id, keys=list(keys), reason=OPT_OUT_REASON, now=now)
                await tx.skip_pending_targets(user_id=user_id, keys=list(keys), now=now)
            paused: dict[uuid.UUID, tuple[str, str]] = {}
            for task_id in dict.fromkeys(row.task_id for row in stopped):
                verdict = await opt_outs.check(tx, task_id, ctx.settings)
                if verdict is not None and await tx.pause_task(task_id=task_id, reason=verdict[1], now=now):
                    paused[task_id] = verdict
            if paused:
                await tx.notify(events=[task_event(t, "status", status=TaskStatus.PAUSED) for t in paused])
            return replied, stopped, paused

        replied, stopped, paused = await ctx.repo.transaction(write)
        if replied or stopped:
            log.info("replies recorded", account_id=account_id, replied=len(replied), opted_out=len(stopped))
        for task_id, (why, reason) in paused.items():
            log.warning("task paused", task_id=str(task_id), reason=reason)
            breaker_trips.labels(reason=why).inc()
            ctx.registry.drop_task(task_id)
        if paused:
            self._refresh()
