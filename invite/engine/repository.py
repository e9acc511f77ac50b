"""The engine's one way to the database: a typed repository over its named statements.

Each loop's statements live beside it by name -- ``sql/queries/claims.sql`` for
``claims.py``, and so on for recorder, breaker, leases, lifecycle, activation and reconcile --
and the suppression list's three (an opt-out is added exactly as the suppression API adds
one). Every statement's ``-- args:`` line names its parameters in order; a method here passes
them by those names (a name missing, extra or out of date fails at once) and returns msgspec
Structs whose fields are the statement's columns, in order (checked on every call). A batch
goes in as one jsonb document, encoded once by msgspec.

Three ways to run a statement, one retry loop for all of them:

* on the pool (``Repository``): a connection per call;
* on a held connection (``Lane``): one loop's hot statements skip the trip through the pool;
  a connection that breaks is dropped, and the next call takes another;
* inside a transaction (``transaction(work)``): ``work`` runs on one connection, and is tried
  again as a whole.

A statement (or a transaction) that loses a deadlock or serialization race is tried again, up
to ATTEMPTS times; any other error is the caller's (the recorder keeps its batch, the loops
try again on their next round). Every call runs inside ``clock.busy()``, so a virtual clock
never jumps while the engine waits on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from invite.engine.decisions import BARRED_JSON, LINK_WATCH, LOST_CLAIM, Verdict
from invite.engine.link_rows import Joined, LinkTarget, OpenLink, SavedLink
from invite.engine.reply_rows import (
    Borrowed,
    MarkedReply,
    OptedOut,
    OptOutWindow,
    ReplySeen,
    Unheld,
    Watched,
)
from invite.engine.statuses import AccountStatus, TaskAccountStatus
from invite.engine.trial_rows import (
    Notified,
    TargetTask,
    TrialClaim,
    TrialId,
    TrialRequested,
    TrialState,
    WaitingTrial,
)
from invite.kernel.clock import Clock
from invite.kernel.db import DbConnection, Statement, check_columns, queries
from invite.tasks.states import FINISHED, Action, TaskStatus, allowed_from, next_status

if TYPE_CHECKING:
    from invite.engine.recorder import AccountChange, LogRow, TargetOutcome, TaskAccountChange

RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# what a statement raises while the database is away or refuses: the loops log it and go on
DATABASE_AWAY = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# InternalClientError: a call on a connection whose backend was just terminated can find the
# protocol mid-operation ("cannot switch to state ...") before the loss is noticed
CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.InternalClientError,
)
ATTEMPTS = 3
# the files of sql/queries/ the engine runs, and the statements it borrows from the API's
ENGINE_FILES = (
    "claims",
    "recorder",
    "breaker",
    "leases",
    "lifecycle",
    "activation",
    "reconcile",
    "trials",
    "links",
    "replies",
)
BORROWED = ("suppressions.lock_tenant", "suppressions.add", "suppressions.skip_pending_targets")

T = TypeVar("T")
R = TypeVar("R", bound=msgspec.Struct)


@cache
def statements(sql_dir: str) -> dict[str, Statement]:
    every = queries(sql_dir)
    keys = [key for key in every if key.partition(".")[0] in ENGINE_FILES] + list(BORROWED)
    return {key: every.statement(key) for key in keys}


# -- what goes in ---------------------------------------------------------------------------


class ClaimingAccount(msgspec.Struct, frozen=True):
    """An account asking the claim for a target: its daily cap and minimum pause for the task,
    and (in an invite task offering one-use links) its cap for a message carrying one."""

    account_id: str
    cap: int
    pause: float
    link_cap: int | None = None


class ListedAccount(msgspec.Struct, frozen=True):
    """An account as the accounts provider lists it for a tenant."""

    id: str
    label: str
    daily_limit: int | None


class Answer(msgspec.Struct, frozen=True):
    """What the platform said of a message in doubt."""

    id: uuid.UUID
    claimed: int  # the attempt number reconcile_take found
    verdict: Verdict
    since: datetime | None


# -- what comes back ------------------------------------------------------------------------


class Claimed(msgspec.Struct, frozen=True):
    id: uuid.UUID
    account_id: str
    identifier_key: str
    user_data: dict[str, Any] | None
    attempts: int
    link_state: str | None  # 'due': the action is the message with a one-use invite link


class _ClaimTail(msgspec.Struct, frozen=True):
    available: int
    running: bool
    next_due: datetime | None
    paired: list[str]
    phones_left: int
    links_left: int


class Released(msgspec.Struct, frozen=True):
    """A target a lost claim had put in flight, put back."""

    id: uuid.UUID
    task_id: uuid.UUID
    account_id: str
    refunded: int  # accounts whose reservation was given back (the same on every row)


class ClaimResult(msgspec.Struct, frozen=True):
    claimed: list[Claimed]
    available: int  # targets found that may be contacted
    running: bool  # the task still runs
    next_due: datetime | None  # only when the claim came back short: when the next pending one is due
    paired: list[str]  # the accounts a target was paired with (one not claimed: its reservation was refused)
    phones_left: int  # +phone targets found that no account with contact room was left to take
    links_left: int  # links due found that no account with link room was left to take


class AccountRow(msgspec.Struct, frozen=True):
    """An account's quota state, as its row in invite_accounts holds it."""

    id: str
    platform: str
    status: str
    daily_window_start: datetime | None
    daily_count: int
    daily_limit: int | None
    last_action_at: datetime | None
    cooldown_until: datetime | None
    pace_multiplier: float


class AccountState(AccountRow, frozen=True):
    held: bool  # this replica still leases it
    contacts_open_at: datetime | None  # when its contacts window closes (None: never opened)
    daily_open_at: datetime | None  # when its 24 h window closes (None: never opened)


class AcquiredAccount(AccountRow, frozen=True):
    user_id: str
    previous_owner: str | None
    channel_invites: dict[str, int]  # running invite task id → invites into its channel so far
    warmup_since: datetime | None  # the start of its clean history (warmup.py)


class RenewedLease(msgspec.Struct, frozen=True):
    id: str
    channel_invites: dict[str, int]


class Recorded(msgspec.Struct, frozen=True):
    applied: list[uuid.UUID]  # the targets whose outcome was written
    logged: int
    accounts: int
    task_accounts: int
    notified: int


class BreakerWindow(msgspec.Struct, frozen=True):
    peer_floods: int
    outcomes: int
    errors: int


class TaskRow(msgspec.Struct, frozen=True):
    """A running task as the scheduler reads it."""

    id: uuid.UUID
    user_id: str
    platform: str
    task_type: str
    target_group_id: str | None
    message_template: str | None
    priority: int
    settings: dict[str, Any] | None


class Servable(msgspec.Struct, frozen=True):
    account_id: str
    task_id: uuid.UUID


class TaskRef(msgspec.Struct, frozen=True):
    id: uuid.UUID
    platform: str


class CompletedTask(msgspec.Struct, frozen=True):
    id: uuid.UUID
    platform: str
    started_at: datetime | None


class Unprepared(msgspec.Struct, frozen=True):
    """A running task no replica has attached accounts to yet."""

    id: uuid.UUID
    user_id: str
    platform: str
    settings: dict[str, Any] | None


class Recovered(msgspec.Struct, frozen=True):
    task_id: uuid.UUID
    status: str


class InDoubt(msgspec.Struct, frozen=True):
    """A message reconcile_take holds in flight while the platform is asked about it."""

    id: uuid.UUID
    task_id: uuid.UUID
    identifier_key: str
    user_data: dict[str, Any] | None
    attempts: int
    since: datetime | None
    link_state: str | None  # 'due': the message carried a one-use invite link (links.py)


class _TakeTail(msgspec.Struct, frozen=True):
    wait_until: datetime | None


class Taken(msgspec.Struct, frozen=True):
    messages: list[InDoubt]
    wait_until: datetime | None  # the latest live lease of anything else in flight on the account


class Settled(msgspec.Struct, frozen=True):
    task_id: uuid.UUID
    status: str
    outcome: str
    counted: bool  # a message sent: counted in the account's usage
    logged: int
    refunded: int


class _Due(msgspec.Struct, frozen=True):
    due: datetime | None


class _Closed(msgspec.Struct, frozen=True):
    closed: int


class _Platform(msgspec.Struct, frozen=True):
    platform: str


class _Running(msgspec.Struct, frozen=True):
    running: bool


class _Prepared(msgspec.Struct, frozen=True):
    prepared: bool


class _AttachedStatus(msgspec.Struct, frozen=True):
    status: str


class _Waiting(msgspec.Struct, frozen=True):
    status: str
    platform: str


# -- the engine's transitions, from the state machine ---------------------------------------


def _transition(action: Action, within: frozenset[TaskStatus] = frozenset(TaskStatus)) -> dict[str, Any]:
    """A guarded statement's ``sources`` and ``target`` for ``action``: the statuses the state
    machine moves from (those of them ``within``), and the one status it moves them all to."""
    sources = allowed_from(action) & within
    (target,) = {next_status(status, action) for status in sources}
    return {"sources": sorted(sources), "target": target}


_DUE = _transition(Action.DUE)
_TRIP = _transition(Action.TRIP)
_FAIL = _transition(Action.FAIL)
# fail_unserved judges a task's attached accounts: a scheduled task has none yet
_FAIL_UNSERVED = _transition(Action.FAIL, within=frozenset({TaskStatus.RUNNING}))
_COMPLETE = _transition(Action.COMPLETE)


# -- the three ways and the one loop --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Database:
    pool: asyncpg.Pool
    clock: Clock
    statements: dict[str, Statement]


class Repository:
    """The engine's statements, one typed method each, on the pool (or inside ``transaction``)."""

    def __init__(self, db: _Database, tx: DbConnection | None = None) -> None:
        self._db = db
        self._tx = tx  # inside transaction(): statements run on its connection, not retried alone

    @classmethod
    def open(cls, pool: asyncpg.Pool, clock: Clock, sql_dir: str) -> Repository:
        return cls(_Database(pool, clock, statements(sql_dir)))

    def lane(self) -> Lane:
        return Lane(self._db)

    async def transaction(self, work: Callable[[Repository], Awaitable[T]]) -> T:
        """``work`` on one connection inside one transaction, tried again as a whole when it loses a
        deadlock or serialization race: it must do nothing but statements before it returns."""

        async def once() -> T:
            async with self._db.pool.acquire() as conn, conn.transaction():
                return await work(Repository(self._db, conn))

        return await self._retried(once)

    async def _retried(self, once: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._db.clock.busy():
                    return await once()
            except RETRYABLE:
                if attempt == ATTEMPTS:
                    raise
            except Exception as exc:
                await self._failed(exc)
                raise
        raise AssertionError("unreachable")

    async def _failed(self, exc: Exception) -> None:
        """After an error that is not retried: the pool takes a broken connection back itself."""

    async def _fetch_once(self, sql: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
        async with self._db.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def _records(self, key: str, /, **args: Any) -> list[asyncpg.Record]:
        statement = self._db.statements[key]
        values = statement.bind(args)
        if self._tx is not None:  # the transaction is tried again as a whole
            return await self._tx.fetch(statement.sql, *values)
        return await self._retried(lambda: self._fetch_once(statement.sql, values))

    async def _rows(self, key: str, row: type[R], /, **args: Any) -> list[R]:
        records = await self._records(key, **args)
        if records:
            check_columns(key, records[0], row)
        return [row(*record) for record in records]

    async def _one(self, key: str, row: type[R], /, **args: Any) -> R | None:
        rows = await self._rows(key, row, **args)
        return rows[0] if rows else None

    # -- claims.sql ---------------------------------------------------------------------------

    async def claim(
        self,
        *,
        task_id: uuid.UUID,
        now: datetime,
        replica: str,
        accounts: Sequence[ClaimingAccount],
        expires_at: datetime,
        recontact_days: int,
        contacts_cap: int,
        claim_id: uuid.UUID,
    ) -> ClaimResult:
        """Targets of one task for ``accounts`` (paired in their order, a +phone target only with
        an account with contact room), each with its quota reserved, marked ``claim_id``."""
        records = await self._records(
            "claims.claim",
            task_id=task_id,
            now=now,
            limit=len(accounts),
            replica=replica,
            accounts=accounts,
            expires_at=expires_at,
            recontact_days=recontact_days,
            contacts_cap=contacts_cap,
            claim_id=claim_id,
            barred=BARRED_JSON,
        )
        first = records[0]  # the statement always returns a row
        check_columns("claims.claim", first, Claimed, _ClaimTail)
        claimed = [Claimed(*record[:6]) for record in records if record[0] is not None]
        return ClaimResult(
            claimed,
            first["available"],
            first["running"],
            first["next_due"],
            first["paired"],
            first["phones_left"],
            first["links_left"],
        )

    async def release_lost_claim(
        self, *, claim_id: uuid.UUID, claimed_at: datetime, expires_at: datetime, now: datetime
    ) -> list[Released]:
        """The targets a claim whose answer was lost put in flight, as the table's LOST_CLAIM says."""
        return await self._rows(
            "claims.release_lost_claim",
            Released,
            claim_id=claim_id,
            claimed_at=claimed_at,
            expires_at=expires_at,
            now=now,
            **LOST_CLAIM,
        )

    async def account_state(self, *, replica: str, account_ids: list[str]) -> list[AccountState]:
        return await self._rows(
            "claims.account_state", AccountState, replica=replica, account_ids=account_ids
        )

    # -- recorder.sql, breaker.sql --------------------------------------------------------------

    async def record(
        self,
        *,
        replica: str,
        targets: Sequence[TargetOutcome],
        logs: Sequence[tuple[uuid.UUID, LogRow]],
        accounts: Sequence[AccountChange],
        task_accounts: Sequence[tuple[tuple[uuid.UUID, str], TaskAccountChange]],
        events: list[str],
        now: datetime,
        kept: Sequence[TaskAccountStatus],
    ) -> Recorded:
        """The group commit, in one statement: ``logs`` pair each row with its task's id,
        ``task_accounts`` each change with its (task id, account id); a task-account status
        among ``kept`` (decisions.KEPT_TASK_ACCOUNT_STATUSES) stays as it is."""
        rows = await self._rows(
            "recorder.record",
            Recorded,
            replica=replica,
            targets=targets,
            logs=logs,
            accounts=accounts,
            task_accounts=task_accounts,
            events=events,
            now=now,
            kept=list(kept),
        )
        return rows[0]

    async def block_task_accounts(self, *, status: TaskAccountStatus, reasons: Mapping[str, str]) -> None:
        """Dead accounts (id → why) given ``status`` in every task they serve."""
        await self._records("recorder.block_task_accounts", status=status, reasons=reasons)

    async def breaker_window(
        self, *, task_id: uuid.UUID, window: int, error_statuses: list[str]
    ) -> BreakerWindow:
        rows = await self._rows(
            "breaker.breaker_window",
            BreakerWindow,
            task_id=task_id,
            window=window,
            error_statuses=error_statuses,
        )
        return rows[0]  # an aggregate always returns its row

    # -- leases.sql -----------------------------------------------------------------------------

    async def acquire_accounts(
        self, *, replica: str, now: datetime, room: int, avoid: list[str], lease_seconds: float, driver: str
    ) -> list[AcquiredAccount]:
        return await self._rows(
            "leases.acquire_accounts",
            AcquiredAccount,
            replica=replica,
            now=now,
            room=room,
            avoid=avoid,
            lease_seconds=lease_seconds,
            driver=driver,
        )

    async def renew_leases(
        self,
        *,
        replica: str,
        account_ids: list[str],
        now: datetime,
        lease_seconds: float,
        daily_limits: list[int | None],
        contacts_limits: list[int | None],
    ) -> list[RenewedLease]:
        """The leases still ours, extended (``daily_limits`` and ``contacts_limits`` in the
        order of ``account_ids``)."""
        return await self._rows(
            "leases.renew_leases",
            RenewedLease,
            replica=replica,
            account_ids=account_ids,
            now=now,
            lease_seconds=lease_seconds,
            daily_limits=daily_limits,
            contacts_limits=contacts_limits,
        )

    async def release_accounts(
        self, *, replica: str, account_ids: list[str], now: datetime, answered_at: list[datetime | None]
    ) -> None:
        await self._records(
            "leases.release_accounts",
            replica=replica,
            account_ids=account_ids,
            now=now,
            answered_at=answered_at,
        )

    async def retire_account(
        self, *, replica: str, account_id: str, status: AccountStatus, reason: str, now: datetime
    ) -> None:
        """An account dead at start-up given ``status`` (outcomes.retire's), if ``replica`` leases it."""
        await self._records(
            "leases.retire_account",
            replica=replica,
            account_id=account_id,
            status=status,
            reason=reason,
            now=now,
        )

    async def running_tasks(self, *, driver: str) -> list[TaskRow]:
        return await self._rows("leases.running_tasks", TaskRow, driver=driver)

    async def servable(self, *, account_ids: list[str], driver: str) -> list[Servable]:
        return await self._rows("leases.servable", Servable, account_ids=account_ids, driver=driver)

    # -- lifecycle.sql --------------------------------------------------------------------------

    async def start_due(self, *, now: datetime) -> list[TaskRef]:
        return await self._rows("lifecycle.start_due", TaskRef, now=now, **_DUE)

    async def next_scheduled(self) -> datetime | None:
        row = await self._one("lifecycle.next_scheduled", _Due)
        return None if row is None else row.due

    async def tasks_without_accounts(self, *, driver: str) -> list[Unprepared]:
        return await self._rows("lifecycle.tasks_without_accounts", Unprepared, driver=driver)

    async def fail_unserved(self, *, now: datetime) -> list[TaskRef]:
        return await self._rows("lifecycle.fail_unserved", TaskRef, now=now, **_FAIL_UNSERVED)

    async def close_queues(self, *, now: datetime, batch: int, closed: str) -> int:
        """How many targets were closed (``batch`` at most per task); ``closed``: what they
        become, by their task's status (decisions.CLOSED_JSON)."""
        rows = await self._rows("lifecycle.close_queues", _Closed, now=now, batch=batch, closed=closed)
        return rows[0].closed

    async def complete_tasks(self, *, now: datetime) -> list[CompletedTask]:
        return await self._rows("lifecycle.complete_tasks", CompletedTask, now=now, **_COMPLETE)

    async def recover(self, *, now: datetime, batch: int, own: str | None, recovered: str) -> list[Recovered]:
        """``recovered``: what a target of each task type becomes (decisions.RECOVERED_JSON)."""
        return await self._rows(
            "lifecycle.recover", Recovered, now=now, batch=batch, own=own, recovered=recovered
        )

    async def pause_task(self, *, task_id: uuid.UUID, reason: str, now: datetime) -> bool:
        """True when the task was running and is paused now."""
        return (
            await self._one(
                "lifecycle.pause_task", _Platform, task_id=task_id, reason=reason, now=now, **_TRIP
            )
            is not None
        )

    async def notify(self, *, events: list[str]) -> None:
        await self._records("lifecycle.notify", events=events)

    # -- activation.sql -------------------------------------------------------------------------

    async def lock_task_for_activation(self, *, task_id: uuid.UUID) -> bool:
        """True when the task still runs (its row is locked until the transaction ends)."""
        return await self._one("activation.lock_task_for_activation", _Running, task_id=task_id) is not None

    async def task_prepared(self, *, task_id: uuid.UUID) -> bool:
        rows = await self._rows("activation.task_prepared", _Prepared, task_id=task_id)
        return rows[0].prepared

    async def upsert_accounts(
        self, *, user_id: str, platform: str, now: datetime, accounts: Sequence[ListedAccount]
    ) -> None:
        await self._records(
            "activation.upsert_accounts", user_id=user_id, platform=platform, now=now, accounts=accounts
        )

    async def attach_accounts(
        self, *, task_id: uuid.UUID, user_id: str, account_ids: list[str], most: int | None
    ) -> list[str]:
        """The statuses of the accounts attached (blocked or active)."""
        rows = await self._rows(
            "activation.attach_accounts",
            _AttachedStatus,
            task_id=task_id,
            user_id=user_id,
            account_ids=account_ids,
            most=most,
        )
        return [row.status for row in rows]

    async def fail_task(self, *, task_id: uuid.UUID, reason: str, now: datetime) -> bool:
        return (
            await self._one(
                "activation.fail_task", _Platform, task_id=task_id, reason=reason, now=now, **_FAIL
            )
            is not None
        )

    async def wait_for_accounts(
        self, *, task_id: uuid.UUID, reason: str, now: datetime, wait_seconds: float
    ) -> str | None:
        """The task's status after the wait was noted (paused once it lasted too long); None when
        it no longer runs without accounts."""
        row = await self._one(
            "activation.wait_for_accounts",
            _Waiting,
            task_id=task_id,
            reason=reason,
            now=now,
            wait_seconds=wait_seconds,
            **_TRIP,
        )
        return None if row is None else row.status

    # -- reconcile.sql --------------------------------------------------------------------------

    async def reconcile_take(
        self,
        *,
        now: datetime,
        account_id: str,
        replica: str,
        lease_seconds: float,
        claim_lease_seconds: float,
    ) -> Taken:
        records = await self._records(
            "reconcile.reconcile_take",
            now=now,
            account_id=account_id,
            replica=replica,
            lease_seconds=lease_seconds,
            claim_lease_seconds=claim_lease_seconds,
        )
        first = records[0]  # the statement always returns a row
        check_columns("reconcile.reconcile_take", first, InDoubt, _TakeTail)
        taken = [InDoubt(*record[:7]) for record in records if record[0] is not None]
        return Taken(taken, first["wait_until"])

    async def reconcile_settle(
        self, *, replica: str, answers: Sequence[Answer], account_id: str, now: datetime, reconciled: str
    ) -> list[Settled]:
        """``reconciled``: what each verdict makes of a message, by its task's status
        (decisions.RECONCILED_JSON)."""
        return await self._rows(
            "reconcile.reconcile_settle",
            Settled,
            replica=replica,
            answers=answers,
            account_id=account_id,
            now=now,
            reconciled=reconciled,
        )

    # -- replies.sql ----------------------------------------------------------------------------

    async def watched_accounts(
        self, *, account_ids: list[str], now: datetime, watch_seconds: float
    ) -> list[Watched]:
        return await self._rows(
            "replies.watched_accounts",
            Watched,
            account_ids=account_ids,
            now=now,
            watch_seconds=watch_seconds,
        )

    async def mark_replied(
        self, *, account_id: str, replies: Sequence[ReplySeen], statuses: Sequence[str]
    ) -> list[MarkedReply]:
        """The targets of the account's message tasks (in one of ``statuses``) first answered now."""
        return await self._rows(
            "replies.mark_replied",
            MarkedReply,
            account_id=account_id,
            replies=replies,
            statuses=list(statuses),
        )

    async def mark_opted_out(
        self, *, account_id: str, replies: Sequence[ReplySeen], statuses: Sequence[str]
    ) -> list[OptedOut]:
        return await self._rows(
            "replies.mark_opted_out",
            OptedOut,
            account_id=account_id,
            replies=replies,
            statuses=list(statuses),
        )

    async def opt_out_window(
        self, *, task_id: uuid.UUID, actions: Sequence[str], reached: Sequence[str], blocked: str
    ) -> OptOutWindow:
        rows = await self._rows(
            "replies.opt_out_window",
            OptOutWindow,
            task_id=task_id,
            actions=list(actions),
            reached=list(reached),
            blocked=blocked,
        )
        return rows[0]  # an aggregate always returns its row

    # -- links.sql ------------------------------------------------------------------------------

    async def link_for(self, *, target_id: uuid.UUID) -> SavedLink | None:
        return await self._one("links.link_for", SavedLink, target_id=target_id)

    async def save_link(
        self,
        *,
        target_id: uuid.UUID,
        task_id: uuid.UUID,
        account_id: str,
        url: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        await self._records(
            "links.save_link",
            target_id=target_id,
            task_id=task_id,
            account_id=account_id,
            url=url,
            expires_at=expires_at,
            now=now,
        )

    async def open_links(self, *, account_ids: Sequence[str]) -> list[OpenLink]:
        return await self._rows("links.open_links", OpenLink, account_ids=list(account_ids))

    async def unheld_links(self, *, driver: str, now: datetime, avoid: Sequence[str]) -> list[OpenLink]:
        """The open links of accounts nobody holds (read under a short lease, followup.py)."""
        return await self._rows("links.unheld_links", OpenLink, driver=driver, now=now, avoid=list(avoid))

    async def mark_joined(self, *, joins: Sequence[Joined]) -> list[LinkTarget]:
        """The targets whose people came in through their links, as decisions.LINK_WATCH says."""
        w = LINK_WATCH
        return await self._rows(
            "links.mark_joined",
            LinkTarget,
            joins=joins,
            joined_status=w["joined_status"],
            joined_outcome=w["joined_outcome"],
            joined_link=w["joined_link"],
            action=w["action"],
        )

    async def mark_expired(self, *, target_ids: Sequence[uuid.UUID], now: datetime) -> list[LinkTarget]:
        """The links of ``target_ids`` revoked (run out unused), their targets as LINK_WATCH says."""
        w = LINK_WATCH
        return await self._rows(
            "links.mark_expired",
            LinkTarget,
            target_ids=list(target_ids),
            now=now,
            expired_status=w["expired_status"],
            expired_outcome=w["expired_outcome"],
            expired_link=w["expired_link"],
            expired_reason=w["expired_reason"],
            action=w["action"],
        )

    # -- suppressions.sql (the suppression API's own rule) --------------------------------------

    async def lock_tenant(self, *, user_id: str) -> None:
        await self._records("suppressions.lock_tenant", user_id=user_id)

    async def suppress(self, *, user_id: str, keys: list[str], reason: str, now: datetime) -> None:
        """Onto the tenant's suppression list, each person under their key."""
        await self._records(
            "suppressions.add", user_id=user_id, keys=keys, identifiers=keys, reason=reason, now=now
        )

    async def skip_pending_targets(self, *, user_id: str, keys: list[str], now: datetime) -> None:
        await self._records("suppressions.skip_pending_targets", user_id=user_id, keys=keys, now=now)

    # -- trials.sql (test invites: the request's statements, then the engine's) -----------------

    async def trial_target_task(self, *, user_id: str, target_id: uuid.UUID) -> uuid.UUID | None:
        """The task of the tenant's target (None: no such target of the tenant's)."""
        row = await self._one("trials.target_task", TargetTask, user_id=user_id, target_id=target_id)
        return None if row is None else row.task_id

    async def settle_stale_trials(self, *, target_id: uuid.UUID, now: datetime) -> None:
        await self._records("trials.settle_stale", target_id=target_id, now=now)

    async def request_trial(
        self,
        *,
        user_id: str,
        task_id: uuid.UUID,
        target_id: uuid.UUID,
        account_id: str,
        now: datetime,
        wait_seconds: float,
        event: str,
    ) -> uuid.UUID | None:
        """The new trial's id; None when one is open on the target already."""
        rows = await self._rows(
            "trials.request",
            TrialRequested,
            user_id=user_id,
            task_id=task_id,
            target_id=target_id,
            account_id=account_id,
            now=now,
            wait_seconds=wait_seconds,
            event=event,
        )
        return rows[0].id

    async def open_trial(self, *, target_id: uuid.UUID) -> uuid.UUID | None:
        row = await self._one("trials.open_trial", TrialId, target_id=target_id)
        return None if row is None else row.id

    async def trial_state(self, *, trial_id: uuid.UUID, user_id: str, now: datetime) -> TrialState | None:
        return await self._one("trials.trial_state", TrialState, trial_id=trial_id, user_id=user_id, now=now)

    async def waiting_trials(self, *, replica: str, now: datetime, driver: str) -> list[WaitingTrial]:
        return await self._rows("trials.waiting", WaitingTrial, replica=replica, now=now, driver=driver)

    async def acquire_trial_accounts(
        self, *, replica: str, now: datetime, room: int, avoid: list[str], lease_seconds: float, driver: str
    ) -> list[AcquiredAccount]:
        return await self._rows(
            "trials.acquire_accounts",
            AcquiredAccount,
            replica=replica,
            now=now,
            room=room,
            avoid=avoid,
            lease_seconds=lease_seconds,
            driver=driver,
        )

    async def claim_trial(
        self,
        *,
        trial_id: uuid.UUID,
        now: datetime,
        replica: str,
        cap: int,
        pause: float,
        lease_seconds: float,
        recontact_days: int,
        contacts_cap: int,
        event: str,
    ) -> TrialClaim | None:
        """What the claim decided; None when the trial no longer waits. ``contacts_cap``: ours
        on the +phone targets an account reaches a day, as the campaign's claim takes it. A
        task the state machine calls finished is closed to trials (the request's check too)."""
        return await self._one(
            "trials.claim",
            TrialClaim,
            trial_id=trial_id,
            now=now,
            replica=replica,
            cap=cap,
            pause=pause,
            lease_seconds=lease_seconds,
            recontact_days=recontact_days,
            contacts_cap=contacts_cap,
            event=event,
            closed=sorted(FINISHED),
        )

    async def refuse_trial(
        self,
        *,
        trial_id: uuid.UUID,
        refused: str,
        detail: str,
        retry_at: datetime | None,
        now: datetime,
        event: str,
    ) -> None:
        await self._rows(
            "trials.refuse",
            Notified,
            trial_id=trial_id,
            refused=refused,
            detail=detail,
            retry_at=retry_at,
            now=now,
            event=event,
        )

    # -- replies.sql: reads on accounts no replica holds (followup.py) --------------------------

    async def unheld_watched(
        self, *, driver: str, now: datetime, watch_seconds: float, avoid: list[str]
    ) -> list[Unheld]:
        return await self._rows(
            "replies.unheld_watched",
            Unheld,
            driver=driver,
            now=now,
            watch_seconds=watch_seconds,
            avoid=avoid,
        )

    async def borrow_account(
        self, *, owner: str, account_id: str, now: datetime, lease_seconds: float
    ) -> Borrowed | None:
        """A short lease for ``owner``; None when someone holds the account (or it is blocked, or
        cools down)."""
        return await self._one(
            "replies.borrow_account",
            Borrowed,
            owner=owner,
            account_id=account_id,
            now=now,
            lease_seconds=lease_seconds,
        )

    async def give_back_account(self, *, owner: str, borrowed: Borrowed) -> None:
        await self._records(
            "replies.give_back_account",
            owner=owner,
            account_id=borrowed.id,
            previous_owner=borrowed.previous_owner,
            previous_expires_at=borrowed.previous_expires_at,
        )


class Lane(Repository):
    """A connection of its own for one loop's hot statements: no trip through the pool (and its
    reset query) per call. Dropped when it breaks, and taken again on the next call."""

    def __init__(self, db: _Database) -> None:
        super().__init__(db)
        self._conn: PoolConnectionProxy | None = None

    async def _fetch_once(self, sql: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
        if self._conn is not None and _closed(self._conn):
            await self.close()  # it closed while idle: nothing is sent on it
        if self._conn is None:
            self._conn = await self._db.pool.acquire()
        return await self._conn.fetch(sql, *args)

    async def _failed(self, exc: Exception) -> None:
        if isinstance(exc, CONNECTION_LOST) or (self._conn is not None and _closed(self._conn)):
            await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._db.clock.busy():
                try:
                    await self._db.pool.release(conn)
                except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                    conn.terminate()


def _closed(conn: PoolConnectionProxy) -> bool:
    """The connection closed -- or the pool took it back as it closed, and then every call on it
    raises "released back to the pool" before sending anything."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True
