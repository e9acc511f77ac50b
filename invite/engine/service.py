"""The engine: one per process, started and stopped by the app's lifespan (or the worker entry point).

    Engine(pool, settings, clock, strategies, accounts).start() ... .stop()

Inside: a lease keeper (which accounts this replica drives; one coroutine per account), one
batched claimer, one group-commit recorder, the replies poller (replies.py), the invite-link watcher (links.py) and the lifecycle loop (scheduled starts,
activation, recovery sweep, completion), woken on task events by the replica's LISTEN hub
(``events``: the app's or the worker's one; without it the engine runs a hub of its own). Stop is graceful: no new claims, in-flight actions finish and are committed, leases
are released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg
import structlog

from invite.engine.claims import Claimer
from invite.engine.context import EngineContext
from invite.engine.followup import ShortLeases
from invite.engine.leases import LeaseKeeper
from invite.engine.lifecycle import Lifecycle
from invite.engine.links import LinkWatcher
from invite.engine.recorder import Recorder
from invite.engine.registry import Registry
from invite.engine.replies import RepliesPoller
from invite.engine.repository import Repository
from invite.engine.trials import Trials
from invite.kernel.clock import Clock
from invite.kernel.events import TaskEvent, TaskEventHub
from invite.kernel.settings import Settings
from invite.platforms.base import AccountsProvider, StrategyFactory

log = structlog.get_logger(__name__)

# Connections the engine keeps for itself (two claim lanes, the group-commit lane), plus what
# its other loops need at the same time (the API has a pool of its own; LISTEN, the hub's own).
HELD_CONNECTIONS = 3
MIN_POOL = HELD_CONNECTIONS + 2


class PoolTooSmall(Exception):
    """ENGINE_DB_POOL_MAX leaves the engine's loops nothing to share."""


class Engine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        strategies: StrategyFactory,
        accounts: AccountsProvider,
        events: TaskEventHub | None = None,
    ) -> None:
        if pool.get_max_size() < MIN_POOL:
            raise PoolTooSmall(
                f"the engine's pool (ENGINE_DB_POOL_MAX) is {pool.get_max_size()}; "
                f"it needs at least {MIN_POOL} "
                f"({HELD_CONNECTIONS} held for claims and group commit, the rest shared)"
            )
        self.settings = settings
        repo = Repository.open(pool, clock, settings.sql_dir)
        registry = Registry()
        recorder = Recorder(repo, registry, settings, clock, accounts, self._refresh)
        claimer = Claimer(repo, registry, settings, clock, self._refresh, self._drained)
        self.ctx = EngineContext(settings, clock, repo, registry, claimer, recorder, Trials())
        self.keeper = LeaseKeeper(self.ctx, strategies, accounts)
        self.lifecycle = Lifecycle(self.ctx, accounts, strategies.driver, self._refresh)
        # reads on accounts no replica holds (replies, link joins), a few at a time per replica
        self.short_leases = ShortLeases(self.ctx, strategies, accounts, self.keeper.kick)
        self.links = LinkWatcher(self.ctx, lambda: self.keeper.held.values(), self.short_leases)
        self.replies = RepliesPoller(
            self.ctx, lambda: self.keeper.held.values(), self._refresh, self.short_leases
        )
        self.events = events or TaskEventHub(settings, clock)
        self._own_events = events is None  # a hub of its own: started and stopped with the engine
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._aborted = False

    async def start(self) -> None:
        await self.lifecycle.recover_own()
        ctx = self.ctx
        self._spawn("recorder", ctx.recorder.run())
        self._spawn("claimer", ctx.claimer.run())
        self._spawn("lifecycle", self.lifecycle.run())
        self._spawn("leases", self.keeper.run())
        self._spawn("replies", self.replies.run())
        self._spawn("links", self.links.run())
        self.events.watch(self._on_event)
        if self._own_events:
            await self.events.start()
        log.info("engine started", replica=self.settings.replica_id)

    async def stop(self) -> None:
        """Graceful shutdown (SIGTERM): stop claiming, finish and record in-flight actions, release leases."""
        if self._aborted:
            return
        self.events.unwatch(self._on_event)
        if self._own_events:
            await self.events.stop()
        for name in ("replies", "links", "leases", "lifecycle"):
            await self._cancel(name)
        await self.keeper.close()
        await self._cancel("claimer")
        self.ctx.recorder.stop()
        await self._join("recorder")
        await self.ctx.recorder.close()
        log.info("engine stopped", replica=self.settings.replica_id)

    def abort(self) -> None:
        """Stop dead without any cleanup — leases and in-flight targets stay behind, as after a kill."""
        self._aborted = True
        self.events.unwatch(self._on_event)
        if self._own_events:
            self.events.cancel()
        self.keeper.abandon()
        for task in self._loops.values():
            task.cancel()

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"engine-{name}")
        task.add_done_callback(self._died)
        self._loops[name] = task

    def _died(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("engine loop died", loop=task.get_name(), error=repr(task.exception()))

    async def _cancel(self, name: str) -> None:
        task = self._loops.get(name)
        if task is not None:
            task.cancel()
        await self._join(name)

    async def _join(self, name: str) -> None:
        task = self._loops.pop(name, None)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _refresh(self) -> None:
        self.keeper.kick()

    def _drained(self) -> None:
        self.lifecycle.kick()

    def _on_event(self, event: TaskEvent | None) -> None:
        if event is not None and event.type == "progress":
            return  # our own group commits and other replicas': nothing to wake for
        self.ctx.registry.wake_all()
        self.keeper.kick()
        self.lifecycle.kick()
