"""Fleet gauges for the alert rules, read from the shared database on every replica.

Accounts by status (blocked share), pending targets of running tasks (backlog) and the
longest a running task has gone without acting (stuck tasks). Every replica reports the same
values; the rules in ``deploy/alerts.yml`` take max() across replicas.
"""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import structlog

from invite.kernel.background import BackgroundLoop
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import accounts_by_status, running_task_idle, targets_pending

PLATFORMS = ("telegram", "instagram", "whatsapp")
ACCOUNT_STATUSES = ("active", "cooldown", "blocked", "disabled")
TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)


class _AccountCount(msgspec.Struct, frozen=True):
    platform: str
    status: str
    n: int


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
    for platform in PLATFORMS:
        targets_pending.labels(platform=platform).set(pending.get(platform, 0))
        for status in ACCOUNT_STATUSES:
            accounts_by_status.labels(platform=platform, status=status).set(
                accounts.get((platform, status), 0)
            )
    running_task_idle.set(idle)


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
