"""Retention: execution logs older than ``log_retention_days`` are deleted, and (when
``finished_task_retention_days`` > 0) finished tasks whose completion is older than that are
removed with their targets and logs.

Deletes run in batches of ``retention_batch_size`` rows, each its own short transaction, so
that no statement holds locks long or leaves vacuum a mountain at once. One replica does a
round at a time: the round holds a session-level advisory lock and the others skip it. The
per-task rollups behind /stats are statistics and stay when old log rows go.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import msgspec
import structlog

from invite.kernel.background import BackgroundLoop
from invite.kernel.clock import Clock
from invite.kernel.db import DbConnection
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql

TASKS_PER_ROUND = 100

log = structlog.get_logger(__name__)


class RetentionRound(msgspec.Struct, kw_only=True):
    ran: bool  # False: another replica holds the round
    logs_deleted: int = 0
    tasks_deleted: int = 0


class _Expired(msgspec.Struct, frozen=True):
    id: uuid.UUID


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "DELETE 5000"


class Retention(BackgroundLoop):
    """The retention job; ``start``/``stop`` run it every ``retention_interval_seconds``."""

    name = "retention"

    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._sql = Sql(settings.sql_dir)

    async def run_once(self) -> RetentionRound:
        async with self._pool.acquire() as conn:
            if not await self._sql.fetchval(conn, "retention.try_lock"):
                return RetentionRound(ran=False)
            try:
                logs = await self._delete_old_logs(conn)
                tasks = await self._delete_old_tasks(conn)
                await self._sql.fetchval(conn, "retention.unlock")
            except BaseException:
                # the pool does not reset what a session holds: a lock that could not be
                # released goes with its session, not back into the pool
                conn.terminate()
                raise
        if logs or tasks:
            log.info("retention round", logs_deleted=logs, tasks_deleted=tasks)
        return RetentionRound(ran=True, logs_deleted=logs, tasks_deleted=tasks)

    async def _run(self) -> None:
        while True:
            try:
                with self._clock.busy():
                    await self.run_once()
            except Exception as exc:  # the next round tries again
                log.warning("retention round failed", error=type(exc).__name__)
            await self._clock.sleep(self._settings.retention_interval_seconds)

    async def _delete_old_logs(self, conn: DbConnection) -> int:
        cutoff = self._clock.now() - timedelta(days=self._settings.log_retention_days)
        total = 0
        while True:
            done = _count(
                await self._sql.execute(
                    conn,
                    "retention.delete_old_logs",
                    cutoff=cutoff,
                    batch_size=self._settings.retention_batch_size,
                )
            )
            total += done
            if done < self._settings.retention_batch_size:
                return total

    async def _delete_old_tasks(self, conn: DbConnection) -> int:
        days = self._settings.finished_task_retention_days
        if not days:
            return 0
        cutoff = self._clock.now() - timedelta(days=days)
        deleted = 0
        expired = await self._sql.fetch(
            conn, "retention.expired_tasks", _Expired, cutoff=cutoff, limit=TASKS_PER_ROUND
        )
        for task in expired:
            if await self._delete_task(conn, task.id, cutoff):
                deleted += 1
        return deleted

    async def _delete_task(self, conn: DbConnection, task_id: uuid.UUID, cutoff: datetime) -> bool:
        """Logs, then targets, a batch per transaction, then the task; False if it came back to life."""
        for name in ("retention.delete_task_logs", "retention.delete_task_targets"):
            while True:
                async with conn.transaction():
                    if not await self._still_expired(conn, task_id, cutoff):
                        return False
                    done = _count(
                        await self._sql.execute(
                            conn, name, task_id=task_id, batch_size=self._settings.retention_batch_size
                        )
                    )
                if done < self._settings.retention_batch_size:
                    break
        async with conn.transaction():
            if not await self._still_expired(conn, task_id, cutoff):
                return False
            await self._sql.execute(conn, "retention.delete_task", task_id=task_id)
        return True

    async def _still_expired(self, conn: DbConnection, task_id: uuid.UUID, cutoff: datetime) -> bool:
        """The task is still finished before ``cutoff``; it stays locked until the transaction ends."""
        return bool(
            await self._sql.fetchval(conn, "retention.lock_expired_task", task_id=task_id, cutoff=cutoff)
        )
