"""The engine benchmark's baseline: pgqueuer draining no-op jobs on the same PostgreSQL.

pgqueuer's own drain benchmark shape (PERF-NOTES.md): ``jobs`` no-op jobs enqueued in
batches of 1,000, then ``managers`` QueueManagers, each on its own connection, dequeue and
acknowledge them ``batch_size`` at a time until the queue is empty. Everything happens in a
fresh schema of the given database (its own ``search_path``), dropped afterwards, so the
baseline can run next to the engine's tables without touching them.

Run alone: ``python bench/pgqueuer_baseline.py --dsn postgresql://... --jobs 20000``
(the last printed line is one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import msgspec
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager, types

ENQUEUE_BATCH = 1_000
ENTRYPOINT = "noop"


class PgqueuerRates(msgspec.Struct, frozen=True):
    jobs: int
    batch_size: int
    managers: int
    enqueue_per_s: float  # inserting the jobs, 1,000 per statement
    dequeue_ack_per_s: float  # the baseline: dequeue + run a no-op + acknowledge
    total_per_s: float  # jobs / (enqueue time + drain time)


async def pgqueuer_rates(dsn: str, jobs: int, *, batch_size: int = 10, managers: int = 5) -> PgqueuerRates:
    """Install pgqueuer in a new schema, enqueue ``jobs`` no-op jobs, drain them, drop the schema."""
    if jobs < 1 or batch_size < 1 or managers < 1:
        raise ValueError("jobs, batch_size and managers must be positive")
    schema = f"pgq_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        enqueue_seconds = await _install_and_enqueue(dsn, schema, jobs)
        drain_seconds = await _drain(dsn, schema, batch_size, managers)
        left = await admin.fetchval(f'SELECT count(*) FROM "{schema}".pgqueuer')
        if left:
            raise RuntimeError(f"pgqueuer left {left} of {jobs} jobs in the queue")
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    return PgqueuerRates(
        jobs=jobs,
        batch_size=batch_size,
        managers=managers,
        enqueue_per_s=jobs / enqueue_seconds,
        dequeue_ack_per_s=jobs / drain_seconds,
        total_per_s=jobs / (enqueue_seconds + drain_seconds),
    )


async def pgqueuer_rate(dsn: str, jobs: int, *, batch_size: int = 10, managers: int = 5) -> float:
    """Jobs per second pgqueuer dequeues and acknowledges (the engine benchmark's baseline)."""
    rates = await pgqueuer_rates(dsn, jobs, batch_size=batch_size, managers=managers)
    return rates.dequeue_ack_per_s


async def _connect(dsn: str, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"search_path": schema})


async def _install_and_enqueue(dsn: str, schema: str, jobs: int) -> float:
    conn = await _connect(dsn, schema)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        await queries.optimize_autovacuum()  # the settings pgqueuer recommends for its hot table
        started = time.perf_counter()
        for offset in range(0, jobs, ENQUEUE_BATCH):
            size = min(ENQUEUE_BATCH, jobs - offset)
            await queries.enqueue([ENTRYPOINT] * size, [None] * size, [0] * size)
        elapsed = time.perf_counter() - started
        # A table filled in seconds has no statistics until autovacuum's next round; without
        # them the planner picks a dequeue plan ~3x slower at 100k jobs. A running pgqueuer
        # has them, so the baseline does too (not timed).
        await conn.execute("ANALYZE pgqueuer; ANALYZE pgqueuer_log")
        return elapsed
    finally:
        await conn.close()


async def _drain(dsn: str, schema: str, batch_size: int, managers: int) -> float:
    connections = [await _connect(dsn, schema) for _ in range(managers)]
    try:
        queue_managers = [QueueManager(Queries(AsyncpgDriver(conn))) for conn in connections]
        for manager in queue_managers:
            manager.entrypoint(ENTRYPOINT)(_noop)
        started = time.perf_counter()
        await asyncio.gather(
            *(m.run(batch_size=batch_size, mode=types.QueueExecutionMode.drain) for m in queue_managers)
        )
        return time.perf_counter() - started
    finally:
        for conn in connections:
            await conn.close()


async def _noop(job: Job) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a database you may create a schema in")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--managers", type=int, default=5)
    args = parser.parse_args()
    # run alone (not imported by bench/engine.py): SIGTERM, too, drops the schema on the way out
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.scratch import run_cleanly

    rates = run_cleanly(
        pgqueuer_rates(args.dsn, args.jobs, batch_size=args.batch_size, managers=args.managers)
    )
    print(msgspec.json.encode(rates).decode())


if __name__ == "__main__":
    main()
