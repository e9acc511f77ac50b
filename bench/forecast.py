"""The forecast benchmark: how close GET /tasks/{id}/forecast comes to the real finish.

Run: ``.venv/bin/python bench/forecast.py [--quick]`` (DATABASE_URL: a server where this may
create and drop a scratch database; default the local one). The last printed line is one
JSON object.

A sandbox campaign on the virtual clock with the real limits on (``--accounts`` accounts,
40 actions a day, 15 s minimum pause, pacing over 24 h) and FloodWaits injected by the
sandbox (``--flood-wait-rate``, each of 30 min – 4 h, longer than the 36 min pacing gap, so
they cost time and stretch the AIMD multiplier). The tenant has run a campaign before
(``--previous`` people, default as many as this one, on the same accounts and FloodWaits; the
accounts rest a day after it): what a forecast knows before a task's first action is the
FloodWaits the tenant's earlier tasks met. The report service's forecast — the one the
endpoint answers — is asked twice: at the start, before the engine has touched an account
for the task (the accounts the provider would give), and once half the people are done. The
actual finish is the moment of the campaign's last action. Each error is a fraction of the
time that was left when the forecast was made:

    error = |forecast finish − actual finish| ÷ (actual finish − moment of the forecast)

``error_at_start`` and ``error_at_half`` (goals: within 0.10 and 0.02).
``first_campaign_error_at_start`` is the start error of the previous campaign, the tenant's
first: nothing is known of its FloodWaits then, which cost it about a tenth of its time. The
baseline is the straight line the status page gave before: remaining ÷ (accounts × daily
quota) days (``straight_error_at_start``, ``straight_error_at_half``), measured on the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import run_cleanly, scratch_database  # noqa: E402
from invite.engine.windows import DAY  # noqa: E402
from invite.kernel.auth import Tenant  # noqa: E402
from invite.kernel.clock import VirtualClock  # noqa: E402
from invite.kernel.db import create_pool  # noqa: E402
from invite.kernel.settings import Settings  # noqa: E402
from invite.observability.logging import configure_logging  # noqa: E402
from invite.platforms.base import RateLimits  # noqa: E402
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory, SandboxProfile  # noqa: E402
from invite.reports.schemas import TaskForecast  # noqa: E402
from invite.reports.service import ReportService  # noqa: E402
from invite.wiring import build_engine  # noqa: E402

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "bench"
POLL_SECONDS = 300.0  # how often (clock seconds) the bench looks whether half is done


async def _make_task(pool: asyncpg.Pool, targets: int, links: bool) -> uuid.UUID:
    async with pool.acquire() as conn, conn.transaction():
        task_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status,
                                         message_template, settings)
               VALUES ($1, 'telegram', 'invite_to_group', 'bench', 'bench-group', 'running', $2, $3)
               RETURNING id""",
            TENANT,
            "Join us: {invite_link}" if links else None,
            {"privacy_fallback": "invite_link"} if links else {},
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
               SELECT $1, '@p' || g, 'u:p' || g FROM generate_series(1, $2) g""",
            task_id,
            targets,
        )
    return task_id


def _error(forecast: datetime | None, made_at: datetime, actual: datetime) -> float | None:
    if forecast is None:
        return None
    return round(abs((forecast - actual).total_seconds()) / (actual - made_at).total_seconds(), 4)


def _straight(remaining: int, accounts: int, quota: int, now: datetime) -> datetime:
    return now + timedelta(days=remaining / (accounts * quota))


async def _run(
    pool: asyncpg.Pool,
    settings: Settings,
    clock: VirtualClock,
    factory: SandboxFactory,
    accounts: SandboxAccounts,
    reports: ReportService,
    task_id: uuid.UUID,
) -> tuple[TaskForecast, TaskForecast, datetime]:
    """One campaign: its forecast at the start and at half, and the moment of its last action."""
    with clock.busy():
        at_start = await reports.forecast(task_id)
    engine = build_engine(pool, settings, clock, strategies=factory, accounts=accounts)
    at_half: TaskForecast | None = None
    await engine.start()
    try:
        while True:
            with clock.busy():
                status = await reports.status(task_id)
                if at_half is None and status.processed * 2 >= status.total:
                    at_half = await reports.forecast(task_id)
            if status.status == "completed":
                break
            await clock.sleep(POLL_SECONDS)
    finally:
        await engine.stop()
    assert at_half is not None
    last: datetime = await pool.fetchval(
        "SELECT max(created_at) FROM invite_execution_logs WHERE task_id = $1", task_id
    )
    return at_start, at_half, last


async def campaign(args: argparse.Namespace) -> dict[str, Any]:
    async with scratch_database(ADMIN_URL, "bench_forecast") as url:
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
            breaker_window=10**6,  # the campaign measures the forecast, not the breaker
            warmup_days=args.warmup_days,  # fresh accounts: 0 at the full quota, else warming up
        )
        clock = VirtualClock()
        pool = await create_pool(url, settings)
        accounts = SandboxAccounts(args.accounts)
        reports = ReportService(pool, settings, clock, Tenant(TENANT), accounts)
        limits = RateLimits(settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds)
        profile = SandboxProfile(
            flood_wait_rate=args.flood_wait_rate,
            flood_wait_range=(1800.0, 14400.0),
            invite_privacy_rate=args.link_fallback,
        )
        factory = SandboxFactory(clock, limits=limits, profile=profile, seed=args.seed)
        try:
            first: float | None = None
            if args.previous:
                # the tenant's previous campaign, on the same accounts; they rest a day after it
                previous = await _make_task(pool, args.previous, args.link_fallback > 0)
                before, _, ended = await _run(pool, settings, clock, factory, accounts, reports, previous)
                first = _error(before.finish_at, before.generated_at, ended)
                await clock.sleep(DAY.total_seconds())
            task_id = await _make_task(pool, args.targets, args.link_fallback > 0)
            at_start, at_half, last = await _run(pool, settings, clock, factory, accounts, reports, task_id)
            actions: int = await pool.fetchval(
                "SELECT count(*) FROM invite_execution_logs WHERE task_id = $1", task_id
            )
            floods: int = await pool.fetchval(
                "SELECT count(*) FROM invite_execution_logs WHERE task_id = $1 AND status = 'flood_wait'",
                task_id,
            )
        finally:
            await pool.close()
    quota = settings.daily_quota
    return {
        "targets": args.targets,
        "accounts": args.accounts,
        "previous": args.previous,
        "actions": actions,
        "flood_waits": floods,
        "campaign_hours": round((last - at_start.generated_at).total_seconds() / 3600, 3),
        "forecast_hours_at_start": round((at_start.days or 0) * 24, 3),
        "half_at_hours": round((at_half.generated_at - at_start.generated_at).total_seconds() / 3600, 3),
        "forecast_hours_at_half": round((at_half.days or 0) * 24, 3),
        "straight_error_at_start": _error(
            _straight(at_start.remaining, args.accounts, quota, at_start.generated_at),
            at_start.generated_at,
            last,
        ),
        "straight_error_at_half": _error(
            _straight(at_half.remaining, args.accounts, quota, at_half.generated_at),
            at_half.generated_at,
            last,
        ),
        "first_campaign_error_at_start": first,
        "error_at_start": _error(at_start.finish_at, at_start.generated_at, last),
        "error_at_half": _error(at_half.finish_at, at_half.generated_at, last),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    result = await campaign(args)
    print(f"campaign simulated in {time.perf_counter() - started:.1f} s", flush=True)
    return result


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller campaign (400 people, 10 accounts)")
    parser.add_argument("--targets", type=int, default=2_000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--flood-wait-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--link-fallback",
        type=float,
        default=0.0,
        help="the share of people whose privacy refuses the add; the tasks offer them a one-use link",
    )
    parser.add_argument(
        "--warmup-days", type=int, default=0, help="the accounts' warm-up (WARMUP_DAYS; 0: at the full quota)"
    )
    parser.add_argument(
        "--previous", type=int, help="people in the tenant's previous campaign (0: none; default --targets)"
    )
    args = parser.parse_args()
    if args.quick:
        args.targets, args.accounts = 400, 10
    if args.previous is None:
        args.previous = args.targets
    return args


if __name__ == "__main__":
    configure_logging(Settings(log_level="WARNING", log_json=False))
    outcome = run_cleanly(main(parse()))
    print(msgspec.json.encode(outcome).decode())
