"""The API benchmark: latency of /status and /stats on a million-target task while the engine
works through it in the same process.

Run: ``.venv/bin/python bench/api.py [--quick]`` (DATABASE_URL: a server where this may
create and drop a scratch database; default the local one). The last printed line is one
JSON object.

On a fresh scratch database one running task of ``--targets`` (1,000,000) invites is written,
then the service is started as production runs it — ``create_app`` under uvicorn on uvloop,
its engine in the app's lifespan on the app's pool (default size) — with the sandbox driver
answering at once (``SANDBOX_PROFILE=zero``) over ``--accounts`` (100) sandbox accounts whose
limits pace the campaign to ``--engine-rate`` (1,000) targets/s, far beyond any real fleet
(40 actions a day per account: that is 2 million accounts); ``--engine-rate 0`` lifts the
limits and lets the engine run flat out. After ``--warmup`` seconds, a load generator in a
separate process (so that its own work is not counted against the service) sends
GET /tasks/{id}/status and GET /tasks/{id}/stats alternately at a fixed ``--rate`` (200
requests/s) for ``--seconds`` (30), open loop: each request is sent at its scheduled instant
whatever the previous ones are doing, and its latency is counted from that instant (no
coordinated omission). ``--no-engine`` measures the API alone for comparison.

Reported: ``status_p50_ms``, ``status_p99_ms``, ``stats_p50_ms``, ``stats_p99_ms``, ``rps``
(responses per second achieved), ``errors`` (non-200 answers or failed requests),
``engine_targets_per_s`` (targets the engine finished during the measurement) and
``pending_at_end`` (the task was still being worked on throughout when > 0).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import uvicorn
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from invite.app import create_app  # noqa: E402
from invite.auth import issue_token  # noqa: E402
from invite.db import migrate  # noqa: E402
from invite.settings import Settings  # noqa: E402

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "900001"
SECRET = "bench-api-" + "x" * 32
PREFIX = "/api/v1/invite"


# --- the service under test --------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = _with_database(ADMIN_URL, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, str(ROOT / "sql"))
        finally:
            await conn.close()
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def populate(url: str, targets: int) -> uuid.UUID:
    """A running task of ``targets`` invites, written as an import would (one COPY-sized insert)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            task_id: uuid.UUID = await conn.fetchval(
                """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status, started_at)
                   VALUES ($1, 'telegram', 'invite_to_group', 'bench', '@bench', 'running', now()) RETURNING id""",
                TENANT,
            )
            await conn.execute(
                """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
                   SELECT $1, '@p' || g, 'u:p' || g FROM generate_series(1, $2) g""",
                task_id,
                targets,
            )
        await conn.execute("VACUUM ANALYZE invite_targets")
    finally:
        await conn.close()
    return task_id


def service_settings(url: str, args: argparse.Namespace) -> Settings:
    """The service's defaults, but the sandbox answering at once, ``--accounts`` sandbox accounts,
    and limits that pace the engine to ``--engine-rate`` targets/s (0: unthrottled)."""
    accounts, engine_rate = args.accounts, args.engine_rate
    quota, pause = 10**9, 0.0001
    if engine_rate > 0:
        quota, pause = math.ceil(engine_rate * 86400 / accounts), accounts / engine_rate
    return Settings(
        database_url=url,
        jwt_secret=SECRET,
        log_json=True,
        log_level="WARNING",
        replica_id="bench-api",
        engine_enabled=not args.no_engine,  # the app's own engine, in its lifespan, on its pool
        sandbox_profile="zero",
        sandbox_accounts_per_tenant=accounts,
        daily_quota=quota,
        daily_quota_with_link=quota,
        min_pause_seconds=pause,
        max_accounts_per_replica=accounts,
        poll_interval_seconds=1.0,
    )


async def finished(conn: asyncpg.Connection, task_id: uuid.UUID) -> int:
    counts = await conn.fetch("SELECT status, n FROM invite_task_counts WHERE task_id = $1", task_id)
    return sum(r["n"] for r in counts if r["status"] not in ("pending", "in_flight"))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    async with scratch_database() as url:
        started = time.perf_counter()
        task_id = await populate(url, args.targets)
        print(f"{args.targets:,} targets written in {time.perf_counter() - started:.1f} s", flush=True)
        settings = service_settings(url, args)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=0,
                lifespan="on",
                log_config=None,
                access_log=False,
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.05)
        try:
            base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            result, finished_per_s, pending = await with_engine(url, task_id, base, args)
        finally:
            server.should_exit = True
            await bounded(serving, "stopping the server")
        result["engine_targets_per_s"] = finished_per_s
        result["pending_at_end"] = pending
        result["engine_rate_target"] = args.engine_rate
        result["targets"] = args.targets
        result["accounts"] = args.accounts
        return result


async def with_engine(
    url: str, task_id: uuid.UUID, base: str, args: argparse.Namespace
) -> tuple[dict[str, Any], int, int]:
    """The load while the app's engine works: (load result, targets/s finished, pending at end)."""
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(args.warmup)
        before, at = await finished(conn, task_id), time.perf_counter()
        print(f"warmed up: {before:,} targets done; measuring for {args.seconds:g} s", flush=True)
        result = await run_load(base, task_id, args)
        after, elapsed = await finished(conn, task_id), time.perf_counter() - at
    finally:
        await conn.close()
    return result, round((after - before) / elapsed), args.targets - after


async def bounded(step: Awaitable[None], what: str, seconds: float = 30.0) -> bool:
    """Shut-down steps may not hang the benchmark: False (and a note) when one took too long."""
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        print(f"{what} took over {seconds:g} s; going on", file=sys.stderr, flush=True)
        return False
    return True


async def run_load(base: str, task_id: uuid.UUID, args: argparse.Namespace) -> dict[str, Any]:
    """The load generator in its own process; its last line is its JSON result."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load",
        base,
        str(task_id),
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    result: dict[str, Any] = msgspec.json.decode(out.decode().strip().splitlines()[-1])
    return result


# --- the load generator ------------------------------------------------------------------------


async def load(base: str, task_id: str, rate: float, seconds: float) -> dict[str, Any]:
    token = issue_token(SECRET, TENANT, timedelta(hours=1))
    paths = {name: f"{PREFIX}/tasks/{task_id}/{name}" for name in ("status", "stats")}
    latencies: dict[str, list[float]] = {"status": [], "stats": []}
    errors = 0

    async def one(http: httpx.AsyncClient, name: str, due: float) -> None:
        nonlocal errors
        try:
            response = await http.get(paths[name])
            if response.status_code != 200:
                errors += 1
                return
        except httpx.HTTPError:
            errors += 1
            return
        latencies[name].append(time.perf_counter() - due)

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as http:
        for name in ("status", "stats") * 10:  # open the connections, warm the caches
            await one(http, name, time.perf_counter())
        latencies = {"status": [], "stats": []}
        errors = 0
        total = int(rate * seconds)
        start = time.perf_counter()
        requests: list[asyncio.Task[None]] = []
        for n in range(total):
            due = start + n / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            requests.append(asyncio.create_task(one(http, "status" if n % 2 == 0 else "stats", due)))
        await asyncio.gather(*requests)
        elapsed = time.perf_counter() - start

    def ms(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 2)

    return {
        "status_p50_ms": ms(latencies["status"], 50),
        "status_p99_ms": ms(latencies["status"], 99),
        "stats_p50_ms": ms(latencies["stats"], 50),
        "stats_p99_ms": ms(latencies["stats"], 99),
        "rps": round((len(latencies["status"]) + len(latencies["stats"])) / elapsed, 1),
        "target_rps": rate,
        "requests": total,
        "errors": errors,
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k targets, 10 s")
    parser.add_argument("--targets", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, both routes together")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of engine work before measuring")
    parser.add_argument(
        "--engine-rate",
        type=float,
        default=1000.0,
        help="targets/s the campaign is paced to through the accounts' limits (0: as fast as it goes)",
    )
    parser.add_argument("--no-engine", action="store_true", help="the API alone, for comparison")
    parser.add_argument("--load", nargs=2, metavar=("BASE_URL", "TASK_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.targets, args.seconds = 100_000, 10.0
    return args


if __name__ == "__main__":
    arguments = parse()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if arguments.load:
            outcome = runner.run(
                load(arguments.load[0], arguments.load[1], arguments.rate, arguments.seconds)
            )
        else:
            outcome = runner.run(measure(arguments))
    print(msgspec.json.encode(outcome).decode())
