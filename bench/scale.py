"""Thousands of sandbox accounts per replica, with Telegram's real limits: what each one costs.

For each account count N and replica count R: a private PostgreSQL (pgserver's binaries, so
its CPU is this run's alone), R ``python -m invite serve`` processes (sandbox driver, profile
``zero``: every action succeeds; 40 actions a day, 15 s apart, paced over the day), N / 1,000
tenants of 1,000 accounts each with one started message task of 2,000 people. Measured from
outside the processes:

* ``first_action_s``: from the first task's start until every account has acted once;
* then, over ``--window`` seconds of the steady state (accounts waiting out their pacing,
  a few actions a second in all, nothing else asking): RSS of the replicas, CPU of the
  replicas and of PostgreSQL (percent of one core), transactions committed per second and per
  action (``pg_stat_database``: the engine's statements are one transaction each — there is
  no ``pg_stat_statements`` in pgserver's build);
* then, over another such window, the p99 of ``GET /tasks/{id}/status`` at ``--rate``
  requests a second;
* ``burst_xact_per_action``: transactions committed per action from the tasks' start until
  every account has acted (and the burst's last commits landed) -- every statement the engine
  runs is a transaction of its own, so this is its statements per action under load, the
  steady window having too few actions to tell (40 a day paced: an account's second action
  comes 36 min after its first).

Run: ``.venv/bin/python bench/scale.py [--quick] [--accounts 1000,5000,20000] [--replicas 1,2]``
(``--quick``: 1,000 accounts, one replica, a 10 s window). The last line printed is
``{"runs": [{"accounts": N, "replicas": R, "rss_mb": ..., "idle_cpu_pct": ..., ...}, ...]}``.
Everything it starts is stopped and deleted at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import run_cleanly, scratch_database  # noqa: E402
from invite.kernel.auth import issue_token  # noqa: E402
from invite.kernel.db import schema_url  # noqa: E402
from invite.kernel.embedded import scratch_server  # noqa: E402
from tests import campaigns  # noqa: E402
from tests.campaigns import PREFIX  # noqa: E402
from tests.ports import free_port  # noqa: E402

SECRET = "bench-scale-" + "x" * 32
PER_TENANT = 1_000
PEOPLE_PER_TASK = 2 * PER_TENANT  # every account acts once, and work is left for the day


class Replica:
    def __init__(self, index: int, database_url: str, accounts: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "VAULT_"))}
        env.update(
            DATABASE_URL=database_url,
            HOST="127.0.0.1",
            PORT=str(self.port),
            REPLICA_ID=f"scale-{index}",
            DATA_DIR=str(log.parent / f"data-{index}"),
            JWT_SECRET=SECRET,
            LOG_LEVEL="WARNING",
            TELEGRAM_DRIVER="sandbox",
            SANDBOX_PROFILE="zero",
            SANDBOX_ACCOUNTS_PER_TENANT=str(PER_TENANT),
            MAX_ACCOUNTS_PER_REPLICA=str(accounts),
            MAX_TARGETS_PER_TASK=str(PEOPLE_PER_TASK),
        )
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "invite", "serve"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.process.pid)

    async def ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited ({self.process.returncode}); see {self.log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}{PREFIX}/health/ready", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"replica not ready in 120 s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def postgres_processes(admin_url: str) -> list[psutil.Process]:
    """The private server's postmaster and its children (backends, checkpointer, WAL writer, ...)."""
    port = int(admin_url.rsplit(":", 1)[1].split("/")[0])
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and f"-p {port}" in " ".join(cmdline):
            return [process, *process.children(recursive=True)]
    raise RuntimeError(f"no postmaster on port {port}")


async def create_tasks(http: httpx.AsyncClient, replica: Replica, tenants: int) -> list[tuple[str, str]]:
    """One started message task per tenant; (tenant, task id) each."""
    made = []
    for tenant in (str(900_000 + n) for n in range(tenants)):
        headers = {"Authorization": f"Bearer {issue_token(SECRET, tenant, timedelta(hours=4))}"}
        people = [f"scale_{tenant}_{n:06d}" for n in range(PEOPLE_PER_TASK)]
        task_id = await campaigns.message_task(
            http, replica.url, headers, title=f"scale {tenant}", usernames=people
        )
        made.append((tenant, task_id))
    return made


async def status_load(
    http: httpx.AsyncClient,
    replicas: list[Replica],
    tasks: list[tuple[str, str]],
    rate: float,
    seconds: float,
) -> list[list[float]]:
    """GET /status at ``rate`` a second for ``seconds``, spread over replicas and tasks; the
    latencies in ms, by replica."""
    rng = random.Random(5)
    latencies: list[list[float]] = [[] for _ in replicas]

    async def one(scheduled: float) -> None:
        tenant, task_id = rng.choice(tasks)
        index = rng.randrange(len(replicas))
        replica = replicas[index]
        headers = {"Authorization": f"Bearer {issue_token(SECRET, tenant, timedelta(hours=1))}"}
        # a request not answered within the client's timeout counts with the time it waited
        with contextlib.suppress(httpx.TimeoutException):
            answer = await http.get(f"{replica.url}{PREFIX}/tasks/{task_id}/status", headers=headers)
            answer.raise_for_status()
        latencies[index].append((time.perf_counter() - scheduled) * 1000)  # from when it was due

    start = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()
    for n in range(int(rate * seconds)):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        task = asyncio.create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return latencies


async def status_alone(
    http: httpx.AsyncClient, replicas: list[Replica], tasks: list[tuple[str, str]]
) -> list[float]:
    """The median of 10 ``GET /status`` sent one after the other, per replica, in ms."""
    medians = []
    for replica in replicas:
        took = []
        for tenant, task_id in (tasks * 10)[:10]:
            headers = {"Authorization": f"Bearer {issue_token(SECRET, tenant, timedelta(hours=1))}"}
            began = time.perf_counter()
            (
                await http.get(f"{replica.url}{PREFIX}/tasks/{task_id}/status", headers=headers)
            ).raise_for_status()
            took.append((time.perf_counter() - began) * 1000)
        medians.append(round(statistics.median(took), 1))
    return medians


def p99(latencies: list[float]) -> float:
    return round(statistics.quantiles(latencies, n=100)[98], 1)


async def counters(conn: asyncpg.Connection) -> tuple[int, int]:
    """(transactions committed in this database, execution log rows = actions so far)."""
    row = await conn.fetchrow(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
        " (SELECT count(*) FROM invite_execution_logs)"
    )
    assert row is not None
    return int(row[0]), int(row[1])


@contextlib.asynccontextmanager
async def replicas_running(url: str, accounts: int, count: int, base: Path) -> AsyncIterator[list[Replica]]:
    replicas = [Replica(i, url, accounts, base / f"replica-{i}.log") for i in range(count)]
    try:
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


async def one_run(accounts: int, count: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    with scratch_server() as admin_url:
        async with (
            scratch_database(admin_url, "bench_scale") as url,
            replicas_running(url, accounts, count, base) as replicas,
            httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http,
        ):
            await asyncio.gather(*(r.ready(http) for r in replicas))
            tasks = await create_tasks(http, replicas[0], accounts // PER_TENANT)
            conn = await asyncpg.connect(schema_url(url))
            try:
                burst0 = await counters(conn)
                began = time.monotonic()
                for tenant, task_id in tasks:
                    headers = {"Authorization": f"Bearer {issue_token(SECRET, tenant, timedelta(hours=1))}"}
                    started = await http.post(
                        f"{replicas[0].url}{PREFIX}/tasks/{task_id}/start", headers=headers
                    )
                    started.raise_for_status()
                while (
                    await conn.fetchval("SELECT count(DISTINCT account_id) FROM invite_execution_logs")
                ) < accounts:
                    if time.monotonic() - began > args.first_action_timeout:
                        raise RuntimeError(f"not every account acted within {args.first_action_timeout} s")
                    await asyncio.sleep(0.5)
                first_action_s = time.monotonic() - began
                await asyncio.sleep(args.settle)  # the burst's last group commits land
                burst1 = await counters(conn)
                pg = postgres_processes(admin_url)
                services = [r.ps for r in replicas]
                # the steady state alone: accounts waiting out their pacing, nothing else asking
                xact0, actions0 = await counters(conn)
                cpu0, pg0, t0 = cpu_seconds(services), cpu_seconds(pg), time.monotonic()
                await asyncio.sleep(args.window)
                cpu1, pg1, t1 = cpu_seconds(services), cpu_seconds(pg), time.monotonic()
                xact1, actions1 = await counters(conn)
                rss = sum(p.memory_info().rss for p in services)
                # one request at a time first (what a request costs), then at --rate
                alone = await status_alone(http, replicas, tasks)
                latencies = await status_load(http, replicas, tasks, args.rate, args.window)
            finally:
                await conn.close()
    elapsed = t1 - t0
    actions = actions1 - actions0
    return {
        "accounts": accounts,
        "replicas": count,
        "rss_mb": round(rss / 2**20, 1),
        "idle_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "pg_cpu_pct": round(100 * (pg1 - pg0) / elapsed, 1),
        "first_action_s": round(first_action_s, 1),
        "status_p99_ms": p99([ms for one in latencies for ms in one]),
        "status_p99_ms_by_replica": [p99(one) for one in latencies],
        "status_alone_ms_by_replica": alone,
        "actions_per_s": round(actions / elapsed, 2),
        "xact_per_s": round((xact1 - xact0) / elapsed, 1),
        "xact_per_action": round((xact1 - xact0) / actions, 1) if actions else None,
        # the start and first actions of every account: leases, activation, claims, group commits
        "burst_actions": burst1[1] - burst0[1],
        "burst_xact_per_action": round((burst1[0] - burst0[0]) / max(burst1[1] - burst0[1], 1), 3),
        "window_s": round(elapsed, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for count in args.replicas:
        for accounts in args.accounts:
            with tempfile.TemporaryDirectory(prefix="invite-scale-") as base:
                result = await one_run(accounts, count, args, Path(base))
            print(msgspec.json.encode(result).decode(), flush=True)
            runs.append(result)
    return {"runs": runs}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 accounts, one replica, a 10 s window")
    parser.add_argument("--accounts", default="1000,5000,20000", help="comma-separated multiples of 1,000")
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of steady state measured")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between the burst and the window")
    parser.add_argument("--rate", type=float, default=50.0, help="GET /status per second during the window")
    parser.add_argument("--first-action-timeout", type=float, default=600.0)
    args = parser.parse_args()
    args.accounts = [int(n) for n in args.accounts.split(",")]
    args.replicas = [int(n) for n in args.replicas.split(",")]
    if args.quick:
        args.accounts, args.replicas, args.window = [1000], [1], 10.0
    if any(n % PER_TENANT for n in args.accounts):
        parser.error(f"--accounts must be multiples of {PER_TENANT}")
    return args


if __name__ == "__main__":
    print(msgspec.json.encode(run_cleanly(main(parse()))).decode())
