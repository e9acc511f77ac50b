"""Helpers for engine scenarios: tasks and targets written straight into a fresh database,
engines on a virtual clock with the sandbox driver, and waiting in simulated time.

``Scenario`` (the ``engine_scenario`` fixture of this folder's conftest; ``open_scenario``
where a fixture cannot serve) holds them together for one database: its pool, a virtual
clock, the settings and the simulated Telegram its engines are started with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from invite.engine.service import Engine
from invite.kernel.clock import Clock, VirtualClock
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings
from invite.platforms.base import AccountsProvider, RateLimits
from invite.platforms.sandbox import (
    MemoryRecord,
    SandboxAccounts,
    SandboxFactory,
    SandboxProfile,
    SandboxRecord,
)
from invite.wiring import build_engine

TENANT = "tenant-1"


def engine_settings(url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": url,
        "jwt_secret": "test-secret-" + "x" * 32,
        "log_json": False,
        "db_pool_max": 6,
        "replica_id": "replica-a",
        "poll_interval_seconds": 600.0,
        "account_lease_seconds": 3600.0,
        "target_lease_seconds": 900.0,
        # accounts at the full quota from their first day: a scenario about warm-up turns it on
        "warmup_days": 0,
    }
    base.update(overrides)
    return Settings(**base)


def sandbox(
    clock: Clock,
    settings: Settings,
    profile: SandboxProfile | None = None,
    seed: int = 7,
    record: SandboxRecord | None = None,
) -> SandboxFactory:
    limits = RateLimits(settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds)
    return SandboxFactory(
        clock, limits=limits, profile=profile or SandboxProfile.zero(), seed=seed, record=record
    )


@asynccontextmanager
async def running_engine(
    pool: asyncpg.Pool,
    settings: Settings,
    clock: Clock,
    factory: SandboxFactory,
    accounts: AccountsProvider,
) -> AsyncIterator[Engine]:
    engine = build_engine(pool, settings, clock, strategies=factory, accounts=accounts)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@asynccontextmanager
async def running_replica(
    settings: Settings, clock: Clock, factory: SandboxFactory, accounts: AccountsProvider
) -> AsyncIterator[tuple[Engine, asyncpg.Pool]]:
    """An engine on a pool of its own, as another process would have."""
    async with (
        engine_pool(settings) as pool,
        running_engine(pool, settings, clock, factory, accounts) as engine,
    ):
        yield engine, pool


@asynccontextmanager
async def engine_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


async def make_task(
    pool: asyncpg.Pool,
    *,
    targets: int,
    user_id: str = TENANT,
    task_type: str = "invite_to_group",
    status: str = "running",
    priority: int = 2,
    settings: dict[str, Any] | None = None,
    template: str | None = None,
    group: str = "group-1",
    scheduled_at: datetime | None = None,
    started_at: datetime | None = None,
    prefix: str = "user",
) -> uuid.UUID:
    """A task with ``targets`` people u:<prefix>1 … (in that order), straight into the tables."""
    async with pool.acquire() as conn, conn.transaction():
        task_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, message_template,
                                         priority, status, settings, scheduled_at, started_at)
               VALUES ($1, 'telegram', $2, 'test', $3, $4, $5, $6::text, $7, $8, $9)
               RETURNING id""",
            user_id,
            task_type,
            group if task_type == "invite_to_group" else None,
            template,
            priority,
            status,
            settings or {},
            scheduled_at,
            started_at,
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, user_data)
               SELECT $1, '@' || $3 || g, 'u:' || $3 || g, jsonb_build_object('first_name', 'Name' || g)
               FROM generate_series(1, $2) g""",
            task_id,
            targets,
            prefix,
        )
    return task_id


async def task_status(pool: asyncpg.Pool, clock: Clock, task_id: uuid.UUID) -> str:
    with clock.busy():
        async with pool.acquire() as conn:
            status: str = await conn.fetchval("SELECT status FROM invite_tasks WHERE id = $1", task_id)
    return status


async def wait_until(
    clock: Clock,
    check: Callable[[], Awaitable[bool]],
    *,
    step: float = 600.0,
    limit: float = 7 * 86400.0,
    real_timeout: float = 60.0,
) -> None:
    """Poll ``check`` every ``step`` clock seconds until it holds; fail after ``limit`` clock seconds."""

    async def poll() -> None:
        waited = 0.0
        while not await check():
            if waited >= limit:
                raise AssertionError(f"condition not met after {limit} clock seconds")
            await clock.sleep(step)
            waited += step

    await asyncio.wait_for(poll(), timeout=real_timeout)


async def wait_for_status(
    pool: asyncpg.Pool, clock: Clock, task_id: uuid.UUID, *statuses: str, **kwargs: Any
) -> None:
    async def reached() -> bool:
        return await task_status(pool, clock, task_id) in statuses

    await wait_until(clock, reached, **kwargs)


async def execution_log(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            """SELECT l.account_id, l.action, l.status, l.created_at, l.task_id, g.identifier_key
               FROM invite_execution_logs l LEFT JOIN invite_targets g ON g.id = l.target_id
               ORDER BY l.created_at, l.id"""
        )


class Scenario:
    """One engine scenario's world: a fresh database's pool, a virtual clock, and the settings
    and simulated Telegram (on one record, ``record``) that its engines are started with."""

    settings: Settings
    factory: SandboxFactory

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self.clock = VirtualClock()
        self.record = MemoryRecord()
        self.configure()

    def configure(self, profile: SandboxProfile | None = None, *, seed: int = 7, **overrides: Any) -> None:
        """The settings (``engine_settings``'s with these overrides) and a simulated Telegram with
        this profile and seed, writing to ``record``, for the engines started from now on."""
        self.settings = engine_settings(self.url, **overrides)
        self.factory = sandbox(self.clock, self.settings, profile, seed, self.record)

    def running(self, accounts: int | AccountsProvider) -> AbstractAsyncContextManager[Engine]:
        """An engine on the scenario's pool; ``accounts``: that many sandbox accounts a tenant, or a provider."""
        return running_engine(self.pool, self.settings, self.clock, self.factory, _provider(accounts))

    def replica(
        self, accounts: int | AccountsProvider, **overrides: Any
    ) -> AbstractAsyncContextManager[tuple[Engine, asyncpg.Pool]]:
        """An engine on a pool of its own (as another process), its settings the scenario's with these overrides."""
        settings = msgspec.structs.replace(self.settings, **overrides)
        return running_replica(settings, self.clock, self.factory, _provider(accounts))

    async def add_task(self, *, targets: int, **fields: Any) -> uuid.UUID:
        """``make_task`` on the scenario's pool."""
        return await make_task(self.pool, targets=targets, **fields)

    async def notify(self, task_id: uuid.UUID, status: str) -> None:
        """What the API sends when a task's status changes."""
        event = msgspec.json.encode({"task_id": str(task_id), "type": "status", "status": status}).decode()
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_notify('invite_task_events', $1)", event)

    async def set_status(self, task_id: uuid.UUID, status: str) -> None:
        """What the API does on pause/resume/cancel: a guarded update, closing the queue on cancel, a notification."""
        with self.clock.busy():
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("UPDATE invite_tasks SET status = $2 WHERE id = $1", task_id, status)
                if status == "cancelled":
                    await conn.execute(
                        "UPDATE invite_targets SET status = 'cancelled' WHERE task_id = $1 AND status = 'pending'",
                        task_id,
                    )
            await self.notify(task_id, status)

    async def task_status(self, task_id: uuid.UUID) -> str:
        return await task_status(self.pool, self.clock, task_id)

    async def status_reason(self, task_id: uuid.UUID) -> str | None:
        with self.clock.busy():
            reason: str | None = await self.pool.fetchval(
                "SELECT status_reason FROM invite_tasks WHERE id = $1", task_id
            )
        return reason

    async def target_counts(self, task_id: uuid.UUID) -> dict[str, int]:
        with self.clock.busy():
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT status, count(*) AS n FROM invite_targets WHERE task_id = $1 GROUP BY 1", task_id
                )
        return {row["status"]: row["n"] for row in rows}

    async def execution_log(self) -> list[asyncpg.Record]:
        return await execution_log(self.pool)

    async def wait_until(self, check: Callable[[], Awaitable[bool]], **kwargs: Any) -> None:
        await wait_until(self.clock, check, **kwargs)

    async def wait_for_status(self, task_id: uuid.UUID, *statuses: str, **kwargs: Any) -> None:
        await wait_for_status(self.pool, self.clock, task_id, *statuses, **kwargs)


def _provider(accounts: int | AccountsProvider) -> AccountsProvider:
    return SandboxAccounts(accounts) if isinstance(accounts, int) else accounts


@asynccontextmanager
async def open_scenario(url: str) -> AsyncIterator[Scenario]:
    """A scenario on the database at ``url``; its pool is closed on exit."""
    async with engine_pool(engine_settings(url)) as pool:
        yield Scenario(url, pool)
