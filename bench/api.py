"""The API benchmark: latency of /status and /stats on a million-target task while the engine
works through it in the same process.

Run: ``.venv/bin/python bench/api.py [--quick] [--engine-rate 100]`` (DATABASE_URL: a server
where this may create and drop a scratch database; default the local one). The last printed
line is one JSON object.

On a fresh scratch database one running task of ``--targets`` (1,000,000) invites is written,
then the service is started as production runs it — ``create_app`` under uvicorn on uvloop,
its engine in the app's lifespan on the engine's own pool, the API on its pool (default sizes)
— with the sandbox driver answering at once (``SANDBOX_PROFILE=zero``) over ``--accounts``
(100) sandbox accounts whose limits pace the campaign to ``--engine-rate`` (1,000) targets/s,
far beyond any real fleet (40 actions a day per account: that is 2 million accounts;
``--engine-rate 100`` is still 200,000); ``--engine-rate 0`` lifts the limits and lets the
engine run flat out. After ``--warmup`` seconds, a load generator in a
separate process (so that its own work is not counted against the service) sends
GET /tasks/{id}/status and GET /tasks/{id}/stats alternately at a fixed ``--rate`` (200
requests/s) for ``--seconds`` (30), open loop: each request is sent at its scheduled instant
whatever the previous ones are doing, and its latency is counted from that instant (no
coordinated omission). ``--no-engine`` measures the API alone for comparison.

Reported: ``status_p50_ms``, ``status_p99_ms``, ``stats_p50_ms``, ``stats_p99_ms``,
``p99_by_window_ms`` (both routes' p99 in each 10 s of the run), ``rps`` (responses per second
achieved), ``errors`` (non-200 answers or failed requests),
``engine_targets_per_s`` (targets the engine finished during the measurement),
``pending_at_end`` (the task was still being worked on throughout when > 0), and what held the
service's event loop meanwhile: ``loop_lag_p99_ms``/``loop_lag_max_ms`` (how late a 10 ms timer
fired) and ``gc_pause_max_ms`` (the longest garbage collection, which stops the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import uvicorn
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import run_cleanly, scratch_database  # noqa: E402
from invite.app import create_app  # noqa: E402
from invite.kernel.auth import issue_token  # noqa: E402
from invite.kernel.settings import Settings  # noqa: E402

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "900001"
SECRET = "bench-api-" + "x" * 32
PREFIX = "/api/v1/invite"


# --- the service under test --------------------------------------------------------------------


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
        # the million rows' dirty pages are written out now, not by a checkpoint inside the measurement
        await conn.execute("CHECKPOINT")
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
        # the app's own engine, in its lifespan, on its pool (or a worker process, or none)
        engine_enabled=not (args.no_engine or args.engine_process),
        sandbox_profile="zero",
        sandbox_accounts_per_tenant=accounts,
        daily_quota=quota,
        daily_quota_with_link=quota,
        warmup_days=0,  # new accounts at the full quota at once
        min_pause_seconds=pause,
        max_accounts_per_replica=accounts,
    )


async def finished(conn: asyncpg.Connection, task_id: uuid.UUID) -> int:
    counts = await conn.fetch("SELECT status, n FROM invite_task_counts WHERE task_id = $1", task_id)
    return sum(r["n"] for r in counts if r["status"] not in ("pending", "in_flight"))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    async with scratch_database(ADMIN_URL, "bench_api") as url:
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
        worker = await start_worker(settings) if args.engine_process else None
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.05)
        try:
            base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            result, finished_per_s, pending = await with_engine(url, task_id, base, args)
        finally:
            if worker is not None:
                worker.terminate()  # SIGTERM: a graceful stop
                if not await bounded(worker.wait(), "stopping the engine worker"):
                    worker.kill()
            server.should_exit = True
            await bounded(serving, "stopping the server")
        result["engine_targets_per_s"] = finished_per_s
        result["pending_at_end"] = pending
        result["engine_rate_target"] = args.engine_rate
        result["engine"] = (
            "none" if args.no_engine else "worker process" if args.engine_process else "in process"
        )
        result["targets"] = args.targets
        result["accounts"] = args.accounts
        return result


async def start_worker(settings: Settings) -> asyncio.subprocess.Process:
    """``python -m invite.engine`` with the same settings (those that differ from the defaults)."""
    defaults = Settings()
    env = dict(os.environ)
    for field in msgspec.structs.fields(Settings):
        value = getattr(settings, field.name)
        if value != getattr(defaults, field.name):
            env[field.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(ENGINE_ENABLED="true", REPLICA_ID="bench-api-worker")
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "invite.engine", env=env, cwd=ROOT)


async def with_engine(
    url: str, task_id: uuid.UUID, base: str, args: argparse.Namespace
) -> tuple[dict[str, Any], int, int]:
    """The load while the app's engine works: (load result, targets/s finished, pending at end)."""
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(args.warmup)
        before, at = await finished(conn, task_id), time.perf_counter()
        print(f"warmed up: {before:,} targets done; measuring for {args.seconds:g} s", flush=True)
        async with watching_the_loop() as stalls:
            result = await run_load(base, task_id, args)
        result.update(stalls)
        after, elapsed = await finished(conn, task_id), time.perf_counter() - at
    finally:
        await conn.close()
    return result, round((after - before) / elapsed), args.targets - after


@asynccontextmanager
async def watching_the_loop(period: float = 0.01) -> AsyncIterator[dict[str, float]]:
    """How late a timer of ``period`` fires in the service's loop, and the collector's pauses
    (each stops the loop), while the block runs; the figures fill the dict yielded at its end."""
    lags: list[float] = []
    pauses: list[float] = []
    began = 0.0

    def collecting(phase: str, _info: dict[str, int]) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began)

    async def tick() -> None:
        while True:
            due = time.perf_counter() + period
            await asyncio.sleep(period)
            lags.append(time.perf_counter() - due)

    figures: dict[str, float] = {}
    gc.callbacks.append(collecting)
    ticker = asyncio.create_task(tick())
    try:
        yield figures
    finally:
        ticker.cancel()
        gc.callbacks.remove(collecting)
    lags.sort()
    figures["loop_lag_p99_ms"] = round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else 0.0
    figures["loop_lag_max_ms"] = round(lags[-1] * 1000, 2) if lags else 0.0
    figures["gc_pause_max_ms"] = round(max(pauses, default=0.0) * 1000, 2)


async def bounded(step: Awaitable[object], what: str, seconds: float = 30.0) -> bool:
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


class Connection:
    """One keep-alive HTTP/1.1 connection that speaks just enough of the protocol for GETs.

    The load generator must cost far less than the service it measures: httpx spends more
    CPU per request than the service does, on a machine whose cores the service needs.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, request: bytes) -> int:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise ConnectionError("a response without Content-Length")
        await self._reader.readexactly(int(length[1]))
        return int(head[9:12])

    def close(self) -> None:
        self._writer.close()


CONNECTIONS = 32  # keep-alive connections the load generator opens before measuring
WINDOW = 10  # seconds: p99_by_window_ms shows whether a high p99 is one stall or the whole run

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def load(base: str, task_id: str, rate: float, seconds: float) -> dict[str, Any]:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    token = issue_token(SECRET, TENANT, timedelta(hours=1))
    requests = {
        name: (
            f"GET {PREFIX}/tasks/{task_id}/{name} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        for name in ("status", "stats")
    }
    answered: list[tuple[str, float, float]] = []  # (route, scheduled at, latency) of each 200
    idle: list[Connection] = []
    errors: Counter[str] = Counter()

    async def one(name: str, due: float) -> None:
        conn = idle.pop() if idle else None
        try:
            if conn is not None:
                try:
                    status = await asyncio.wait_for(conn.get(requests[name]), 30)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # the server closed this keep-alive connection while it sat idle: a GET
                    # is safe to send again, on a new one (as any HTTP client does)
                    conn.close()
                    conn = None
            if conn is None:
                conn = await Connection.open(host, port)
                status = await asyncio.wait_for(conn.get(requests[name]), 30)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            return
        idle.append(conn)
        if status != 200:
            errors[f"HTTP {status}"] += 1
            return
        answered.append((name, due, time.perf_counter() - due))

    # the connections a stall could call for, opened (and the caches warmed) before the clock
    # starts, as a client's pool would be: not one at a time in the middle of the measurement
    for name in ("status", "stats") * 5:
        await asyncio.gather(*(one(name, time.perf_counter()) for _ in range(CONNECTIONS)))
    answered.clear()
    errors.clear()
    total = int(rate * seconds)
    # The generator's own garbage collection stays out of the measured window: a full pass over
    # its requests in flight once took 83 ms, and every request due meanwhile was charged for it.
    gc.collect()
    gc.disable()
    start = time.perf_counter()
    running: list[asyncio.Task[None]] = []
    for n in range(total):
        due = start + n / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        running.append(asyncio.create_task(one("status" if n % 2 == 0 else "stats", due)))
    await asyncio.gather(*running)
    elapsed = time.perf_counter() - start
    gc.enable()
    latencies = {
        route: [latency for name, _, latency in answered if name == route] for route in ("status", "stats")
    }
    for conn in idle:
        conn.close()

    def ms(values: list[float], q: int) -> float | None:
        if len(values) < 2:
            return None
        return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 2)

    return {
        "status_p50_ms": ms(latencies["status"], 50),
        "status_p99_ms": ms(latencies["status"], 99),
        "stats_p50_ms": ms(latencies["stats"], 50),
        "stats_p99_ms": ms(latencies["stats"], 99),
        "p99_by_window_ms": [
            ms([latency for _, due, latency in answered if start + w <= due < start + w + WINDOW], 99)
            for w in range(0, math.ceil(seconds), WINDOW)
        ],
        "rps": round(len(answered) / elapsed, 1),
        "target_rps": rate,
        "requests": total,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
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
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the engine in a worker process (python -m invite.engine) instead of the API's",
    )
    parser.add_argument("--load", nargs=2, metavar=("BASE_URL", "TASK_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.targets, args.seconds = 100_000, 10.0
    return args


if __name__ == "__main__":
    arguments = parse()
    outcome = run_cleanly(
        load(arguments.load[0], arguments.load[1], arguments.rate, arguments.seconds)
        if arguments.load
        else measure(arguments),
        loop_factory=uvloop.new_event_loop,
    )
    print(msgspec.json.encode(outcome).decode())
