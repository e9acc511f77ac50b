"""Fleet gauges for the alert rules, read from the shared database on every replica.

Accounts by status and by health (the dead or frozen share), pending targets of running tasks
(backlog) and the longest a running task has gone without acting (stuck tasks). Every replica
reports the same values; the rules in ``deploy/alerts.yml`` take max() across replicas.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import msgspec
import structlog

from invite.engine.health import AccountFacts, Health, account_health
from invite.engine.warmup import warmup_cap, warmup_day
from invite.kernel.background import BackgroundLoop
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import (
    accounts_by_health,
    accounts_by_status,
    running_task_idle,
    targets_pending,
)

PLATFORMS = ("telegram", "instagram", "whatsapp")
ACCOUNT_STATUSES = ("active", "cooldown", "blocked", "disabled")
TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)


class _AccountCount(msgspec.Struct, frozen=True):
    platform: str
    status: str
    n: int


class _AccountHealth(msgspec.Struct, frozen=True):
    platform: str
    status: str
    status_reason: str | None
    cooldown_until: datetime | None
    daily_limit: int | None
    pace_multiplier: float
    used_today: int
    warmup_since: datetime | None


class _PendingCount(msgspec.Struct, frozen=True):
    platform: str
    n: int


async def refresh_fleet_gauges(pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
    sql = Sql(settings.sql_dir)
    async with asyncio.timeout(TIMEOUT_SECONDS), pool.acquire() as conn:
        accounts = {
            (r.platform, r.status): r.n
            for r in await sql.fetch(conn, "reports.accounts_by_status", _AccountCount)
        }
        pending = {
            r.platform: r.n for r in await sql.fetch(conn, "reports.pending_by_platform", _PendingCount)
        }
        idle = await sql.fetchval(conn, "reports.running_task_idle_max", now=clock.now())
        now = clock.now()
        health = _health_counts(
            await sql.fetch(conn, "accounts.fleet_health", _AccountHealth, now=now), now, settings
        )
    for platform in PLATFORMS:
        targets_pending.labels(platform=platform).set(pending.get(platform, 0))
        for status in ACCOUNT_STATUSES:
            accounts_by_status.labels(platform=platform, status=status).set(
                accounts.get((platform, status), 0)
            )
        for state in Health:
            accounts_by_health.labels(platform=platform, health=state.value).set(
                health.get((platform, state), 0)
            )
    running_task_idle.set(idle)


def _health_counts(
    rows: list[_AccountHealth], now: datetime, settings: Settings
) -> dict[tuple[str, Health], int]:
    """Accounts by platform and health, each read as GET /accounts reads it (our quota, the
    provider's limit and the warm-up's, the lowest)."""
    counts: dict[tuple[str, Health], int] = {}
    for r in rows:
        full = min(settings.daily_quota, r.daily_limit) if r.daily_limit is not None else settings.daily_quota
        cap = warmup_cap(warmup_day(r.warmup_since, now, settings), full, settings)
        facts = AccountFacts(
            r.status, r.status_reason, r.cooldown_until, r.pace_multiplier, r.warmup_since, r.used_today, cap
        )
        key = (r.platform, account_health(facts, now, settings).health)
        counts[key] = counts.get(key, 0) + 1
    return counts


class FleetGauges(BackgroundLoop):
    """Background service: refreshes the fleet gauges every ``fleet_gauges_interval_seconds``."""

    name = "fleet-gauges"

    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock

    async def _run(self) -> None:
        while True:
            try:
                with self._clock.busy():
                    await refresh_fleet_gauges(self._pool, self._settings, self._clock)
            except Exception as exc:  # the last values stay; the next round tries again
                log.warning("fleet gauges not refreshed", error=type(exc).__name__)
            await self._clock.sleep(self._settings.fleet_gauges_interval_seconds)
