"""The engine benchmark: throughput against pgqueuer, and how close a campaign runs to its limits.

Run: ``.venv/bin/python bench/engine.py [--quick]`` (DATABASE_URL: a server where this may
create and drop scratch databases; default the local one). The last printed line is one
JSON object.

(a) ``targets_per_s``: one task of ``--targets`` (100,000) invites over ``--accounts`` (100)
sandbox accounts, the sandbox answering at once (``SandboxProfile.zero()``) and the limits
lifted (a quota of 10^9 a day, a pause of 0.1 ms — it must stay above zero), real clock,
from the engine's start until the task is completed, each run on a fresh scratch database.
Right after each engine run, pgqueuer (``bench/pgqueuer_baseline.py``) drains the same
number of no-op jobs on a scratch database of the same server: 5 queue managers × batch 10
(``pgqueuer_jobs_per_s``, its default benchmark shape) and batch 100
(``pgqueuer_b100_jobs_per_s``). ``--runs`` (3) such rounds; rates are the medians of each
series, ``ratio_vs_pgqueuer*`` the medians of the per-round ratios (ours ÷ theirs under the
same load — the machine is shared and its load drifts).

(b) ``utilisation``: a simulated campaign on the virtual clock with the real limits on
(``--campaign-accounts`` accounts, 40 actions a day, 15 s minimum pause, pacing over 24 h)
and FloodWaits injected by the sandbox (``flood_wait_rate``, 30 min – 4 h each, longer than
the 36 min pacing gap, so they do cost time). Precisely:

    utilisation = (time of the last action − campaign start) ÷ (T* − campaign start)

where T* is the makespan of the ideal schedule: the same accounts, each acting at the
earliest instant its bucket allows (the engine's own rules — 24 h quota window, gap =
max(pause × AIMD multiplier, pacing interval), cooldowns), each account meeting the same
sequence of answers it met in the run (its FloodWaits with their durations, in order;
"success" once its own sequence is used up), and as many actions in total as the run made.
Every action in the ideal schedule happens as early as the rules allow, so no scheduler that
keeps the limits can finish sooner: ``utilisation`` ≥ 1, and 1.0 means the engine lost no
time at all. ``quota_violations`` counts, from the execution log, every action that breaks
the daily quota in any sliding 24 h window or comes sooner than the minimum pause after the
account's previous action.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import importlib.util
import itertools
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import run_cleanly, scratch_database  # noqa: E402
from invite.engine.bucket import Bucket, Limits  # noqa: E402
from invite.kernel.clock import RealClock, VirtualClock  # noqa: E402
from invite.kernel.db import create_pool  # noqa: E402
from invite.kernel.settings import Settings  # noqa: E402
from invite.observability.logging import configure_logging  # noqa: E402
from invite.platforms.base import RateLimits  # noqa: E402
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory, SandboxProfile  # noqa: E402
from invite.wiring import build_engine  # noqa: E402

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "bench"
DAY = timedelta(days=1)


async def _make_task(pool: asyncpg.Pool, targets: int) -> uuid.UUID:
    async with pool.acquire() as conn, conn.transaction():
        task_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status)
               VALUES ($1, 'telegram', 'invite_to_group', 'bench', 'bench-group', 'running') RETURNING id""",
            TENANT,
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
               SELECT $1, '@p' || g, 'u:p' || g FROM generate_series(1, $2) g""",
            task_id,
            targets,
        )
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE invite_targets")  # a live system has statistics; pgqueuer's run too
    return task_id


@asynccontextmanager
async def _completion(url: str, task_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
    """Set when the engine announces the task completed (LISTEN, as a status page would)."""
    completed = asyncio.Event()

    def heard(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        event = msgspec.json.decode(str(payload))
        if event.get("task_id") == str(task_id) and event.get("status") == "completed":
            completed.set()

    conn = await asyncpg.connect(url)
    try:
        await conn.add_listener("invite_task_events", heard)
        yield completed
    finally:
        await conn.close()


async def _task_status(pool: asyncpg.Pool, task_id: uuid.UUID) -> str:
    async with pool.acquire() as conn:
        status: str = await conn.fetchval("SELECT status FROM invite_tasks WHERE id = $1", task_id)
    return status


# --- (a) throughput ---------------------------------------------------------------------------


async def throughput_run(targets: int, accounts: int) -> float:
    async with scratch_database(ADMIN_URL, "bench_engine") as url:
        settings = Settings(
            database_url=url,
            jwt_secret="bench-" + "x" * 32,
            log_json=False,
            log_level="WARNING",
            db_pool_max=6,  # sized to the machine, not to the accounts: 4 held by the engine + 2
            replica_id="bench",
            daily_quota=10**9,
            daily_quota_with_link=10**9,
            warmup_days=0,  # new accounts at the full quota at once
            min_pause_seconds=0.0001,
            max_accounts_per_replica=accounts,
            poll_interval_seconds=1.0,
        )
        pool = await create_pool(url, settings)
        try:
            task_id = await _make_task(pool, targets)
            clock = RealClock()
            limits = RateLimits(
                settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds
            )
            factory = SandboxFactory(clock, limits=limits, profile=SandboxProfile.zero())
            engine = build_engine(
                pool, settings, clock, strategies=factory, accounts=SandboxAccounts(accounts)
            )
            async with _completion(url, task_id) as completed:
                started = time.perf_counter()
                await engine.start()
                try:
                    await completed.wait()
                    elapsed = time.perf_counter() - started
                finally:
                    await engine.stop()
            async with pool.acquire() as conn:
                done = await conn.fetchval(
                    "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'succeeded'", task_id
                )
            if done != targets:
                raise RuntimeError(f"only {done} of {targets} targets succeeded")
            return targets / elapsed
        finally:
            await pool.close()


def _load_pgqueuer_baseline() -> Any:
    spec = importlib.util.spec_from_file_location(
        "pgqueuer_baseline", ROOT / "bench" / "pgqueuer_baseline.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def pgqueuer_run(jobs: int, batch_size: int) -> float:
    baseline = _load_pgqueuer_baseline()
    async with scratch_database(ADMIN_URL, "bench_engine", migrated=False) as url:
        rate: float = await baseline.pgqueuer_rate(url, jobs, batch_size=batch_size, managers=5)
        return rate


# --- (b) utilisation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    account_id: str
    at: datetime
    status: str
    seconds: float


async def campaign(targets: int, accounts: int, flood_wait_rate: float, seed: int) -> dict[str, Any]:
    async with scratch_database(ADMIN_URL, "bench_engine") as url:
        settings = Settings(
            database_url=url,
            jwt_secret="bench-" + "x" * 32,
            log_json=False,
            log_level="WARNING",
            db_pool_max=6,
            replica_id="bench",
            poll_interval_seconds=900.0,
            account_lease_seconds=3600.0,
            target_lease_seconds=3600.0,
            breaker_window=10**6,  # the campaign measures pacing, not the breaker
            warmup_days=0,  # ... nor the warm-up: the quota it checks is the full one
        )
        clock = VirtualClock()
        start = clock.now()
        pool = await create_pool(url, settings)
        try:
            task_id = await _make_task(pool, targets)
            limits = RateLimits(
                settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds
            )
            profile = SandboxProfile(flood_wait_rate=flood_wait_rate, flood_wait_range=(1800.0, 14400.0))
            factory = SandboxFactory(clock, limits=limits, profile=profile, seed=seed)
            engine = build_engine(
                pool, settings, clock, strategies=factory, accounts=SandboxAccounts(accounts)
            )
            await engine.start()
            try:
                while True:
                    with clock.busy():
                        status = await _task_status(pool, task_id)
                    if status == "completed":
                        break
                    await clock.sleep(3600)
            finally:
                await engine.stop()
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    """SELECT account_id, created_at, status, COALESCE((details ->> 'seconds')::float8, 0) AS seconds
                       FROM invite_execution_logs ORDER BY created_at, id"""
                )
        finally:
            await pool.close()
    actions = [Action(r["account_id"], r["created_at"], r["status"], r["seconds"]) for r in rows]
    bucket_limits = Limits.of(settings.daily_quota, settings.min_pause_seconds)
    actual = (max(a.at for a in actions) - start).total_seconds()
    ideal = (ideal_finish(actions, start, bucket_limits, settings) - start).total_seconds()
    return {
        "campaign_targets": targets,
        "campaign_accounts": accounts,
        "campaign_actions": len(actions),
        "campaign_flood_waits": sum(a.status == "flood_wait" for a in actions),
        "campaign_hours": round(actual / 3600, 3),
        "ideal_hours": round(ideal / 3600, 3),
        "utilisation": round(actual / ideal, 4),
        "quota_violations": quota_violations(actions, settings.daily_quota, settings.min_pause_seconds),
    }


def ideal_finish(actions: list[Action], start: datetime, limits: Limits, settings: Settings) -> datetime:
    """T*: every account acts as early as its bucket allows, meeting its own answers in order."""
    answers: dict[str, list[Action]] = defaultdict(list)
    for action in actions:
        answers[action.account_id].append(action)
    buckets = {account: Bucket() for account in answers}
    used = dict.fromkeys(answers, 0)
    ready = [(start, account) for account in sorted(answers)]
    heapq.heapify(ready)
    last = start
    for _ in range(len(actions)):
        at, account = heapq.heappop(ready)
        bucket = buckets[account]
        bucket.reserve(at)
        last = at
        mine = answers[account]
        answer = mine[used[account]] if used[account] < len(mine) else None
        used[account] += 1
        if answer is not None and answer.status == "flood_wait":
            bucket.cool_down(at + timedelta(seconds=answer.seconds))
            bucket.back_off(settings.pace_multiplier_max)
        elif answer is None or answer.status in ("success", "already_member"):
            bucket.relax(settings.pace_multiplier_step)
        heapq.heappush(ready, (bucket.next_allowed(at, limits), account))
    return last


def quota_violations(actions: list[Action], quota: int, min_pause: float) -> int:
    by_account: dict[str, list[datetime]] = defaultdict(list)
    for action in actions:
        by_account[action.account_id].append(action.at)
    violations = 0
    pause = timedelta(seconds=min_pause)
    for times in by_account.values():
        times.sort()
        violations += sum(1 for a, b in itertools.pairwise(times) if b - a < pause)
        violations += sum(1 for i in range(quota, len(times)) if times[i] - times[i - quota] < DAY)
    return violations


# --- main ----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # The machine is shared: load drifts by the minute. Each round runs the engine and then
    # pgqueuer (batch 10, batch 100) right after it, under the same load; the ratios are the
    # medians of the per-round ratios, the rates the medians of each series.
    ours, pgq10, pgq100 = [], [], []
    for run in range(args.runs):
        ours.append(await throughput_run(args.targets, args.accounts))
        pgq10.append(await pgqueuer_run(args.targets, 10))
        pgq100.append(await pgqueuer_run(args.targets, 100))
        print(
            f"round {run + 1}: engine {ours[-1]:,.0f} targets/s, "
            f"pgqueuer b10 {pgq10[-1]:,.0f} jobs/s, b100 {pgq100[-1]:,.0f} jobs/s",
            flush=True,
        )
    result: dict[str, Any] = {
        "targets": args.targets,
        "accounts": args.accounts,
        "runs": [round(r) for r in ours],
        "targets_per_s": round(statistics.median(ours)),
        "pgqueuer_jobs_per_s": round(statistics.median(pgq10)),
        "ratio_vs_pgqueuer": round(statistics.median(o / p for o, p in zip(ours, pgq10, strict=True)), 3),
        "pgqueuer_b100_jobs_per_s": round(statistics.median(pgq100)),
        "ratio_vs_pgqueuer_b100": round(
            statistics.median(o / p for o, p in zip(ours, pgq100, strict=True)), 3
        ),
    }
    started = time.perf_counter()
    result.update(
        await campaign(args.campaign_targets, args.campaign_accounts, args.flood_wait_rate, args.seed)
    )
    print(f"campaign simulated in {time.perf_counter() - started:.1f} s", flush=True)
    return result


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k targets, one run, a smaller campaign")
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--campaign-targets", type=int, default=2_000)
    parser.add_argument("--campaign-accounts", type=int, default=20)
    parser.add_argument("--flood-wait-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.quick:
        args.targets, args.runs, args.campaign_targets = 10_000, 1, 500
    return args


if __name__ == "__main__":
    configure_logging(Settings(log_level="WARNING", log_json=False))
    outcome = run_cleanly(main(parse()))
    print(msgspec.json.encode(outcome).decode())
