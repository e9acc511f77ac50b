"""The chaos run: a sandbox campaign over two replicas that keep being killed, and a database restart.

Run: ``.venv/bin/python bench/chaos.py [--targets 5000] [--kills 20]``. The last printed line is
one JSON object; progress goes to stderr.

What it does:

1. Starts a private PostgreSQL 15 (``initdb`` into a temporary directory, run as the
   ``postgres`` user when this runs as root, on a free port): the machine's shared server is
   never restarted. Migrates a database there.
2. Starts two replicas, ``python -m invite serve``, with different ``PORT``/``REPLICA_ID``,
   the same ``DATABASE_URL`` and one ``SANDBOX_RECORD_PATH`` (the sandbox's JSONL record of
   every action it received), on a fast real clock: a pause of ``--min-pause`` seconds, a daily
   quota too large to bind, 2 s account and target leases so takeovers happen fast. The
   sandbox answers like Telegram now and then does (privacy, not found, transient errors,
   short FloodWaits).
3. Through the API of replica 0: ``--tasks`` tenants each create a send_messages task, import
   their share of ``--targets`` people from a CSV upload, and start it.
4. While the campaign runs: ``--kills`` times, at progress points drawn at random, SIGKILLs a
   random replica that is up and starts it again at once (same REPLICA_ID); once, at a random
   point in the middle, restarts PostgreSQL (immediate mode: a crash and WAL recovery).
   Meanwhile ``--suppressions`` times, the tenant suppresses (``POST /suppressions``) someone
   the engine is working on -- a person in flight when there is one, else one still pending --
   and the run notes when it was answered and whether a target of the person's was in flight.
   Once, at about half way (``--sigterm``), a replica with an unread ``/events`` stream and five
   slowloris uploads attached is sent SIGTERM; how long it took to exit and the leases it left
   are noted, and it is started again.
5. Waits for every task to complete, stops the replicas with SIGTERM, and judges the run from
   the database and the sandbox's record:

   - ``lost``: targets not in a final state;
   - ``duplicate_messages``: messages a person received more than once (the record);
   - ``quota_violations``: per account, from the record, an action closer than the minimum
     pause to the account's previous one, or more than the daily quota in a sliding 24 h;
   - ``uncertain``: targets whose delivery is unknown, each explained by a kill (or the
     restart of PostgreSQL) during its lease; ``uncertain_unexplained`` lists any that are not.
     A message left in doubt is first reconciled by its account's next holder, which asks
     the sandbox whether it went out: ``reconciled`` counts the answers (delivered_confirmed
     ones count as delivered, not_sent ones were sent again -- still one delivery each, or
     ``duplicate_messages`` says otherwise); only the unanswered stay uncertain;
   - ``actions_after_suppression``: messages to a suppressed person that began after the
     suppression was answered, less the one in flight then (a claim made before the commit may
     still go out; none made after it may);
   - ``sigterm``: the replica's exit time against its bound (``SHUTDOWN_TIMEOUT_SECONDS``),
     whether the last resort had to exit it, and the account leases it left behind;
   - ``kills``, ``pg_restarts``, ``duration_s`` and the throughput.

Goal: lost, duplicate_messages, quota_violations and actions_after_suppression all 0,
uncertain ≤ kills, the SIGTERMed replica gone within its bound with 0 leases left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from invite.kernel.auth import issue_token  # noqa: E402
from invite.kernel.db import migrate, schema_url  # noqa: E402
from invite.platforms.sandbox import ActionKind, SandboxAction, read_record, sends_per_target  # noqa: E402
from tests import campaigns  # noqa: E402
from tests.campaigns import PREFIX  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.slowclients import SlowClients  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECRET = "chaos-secret-" + "c" * 32
FINAL = ("succeeded", "skipped", "failed", "uncertain", "cancelled")
UNFINISHED = ("pending", "in_flight")
LEASE_SECONDS = 2.0
SHUTDOWN_BOUND = 10.0  # the replicas' SHUTDOWN_TIMEOUT_SECONDS
PROFILE = {
    "not_found_rate": 0.02,
    "privacy_restricted_rate": 0.05,
    "transient_rate": 0.01,
    "flood_wait_rate": 0.002,
    "flood_wait_seconds": [1.0, 2.0],
}


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- a private PostgreSQL ---------------------------------------------------------------------


class PrivatePostgres:
    """A throwaway server in ``base``; as root it runs as the ``postgres`` user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = [str(PG_BIN / argv[0]), *argv[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self.base.chmod(0o755)
        self.data.mkdir()
        if self.as_postgres:
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data} "
            # fsync off: a killed server loses nothing the OS has; commits stay synchronous,
            # so what a client saw committed survives the immediate restart
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


# --- replicas ---------------------------------------------------------------------------------


@dataclass
class Replica:
    index: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    up: bool = False
    starts: int = 0

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "invite", "serve"], env=self.env, cwd=ROOT, stdout=out, stderr=out
            )
        self.up = False
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.up = False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_ready(http: httpx.AsyncClient, replica: Replica, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert replica.process is not None
        if replica.process.poll() is not None:
            raise RuntimeError(
                f"replica {replica.index} exited ({replica.process.returncode}); see {replica.log_path}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(f"{replica.url}{PREFIX}/health/ready", timeout=1.0)).status_code == 200:
                replica.up = True
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"replica {replica.index} not ready after {timeout} s; see {replica.log_path}")


def replica_env(
    index: int, args: argparse.Namespace, database_url: str, record: Path, base: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "VAULT_", "INTEGRATION_"))
    }
    env.update(
        DATABASE_URL=database_url,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        REPLICA_ID=f"replica-{index}",
        DATA_DIR=str(base / f"data-{index}"),
        JWT_SECRET=SECRET,
        LOG_LEVEL="WARNING",
        LOG_JSON="true",
        TELEGRAM_DRIVER="sandbox",
        SANDBOX_RECORD_PATH=str(record),
        SANDBOX_PROFILE=msgspec.json.encode(PROFILE).decode(),
        SANDBOX_SEED=str(args.seed),
        SANDBOX_ACCOUNTS_PER_TENANT=str(args.accounts),
        DAILY_QUOTA=str(args.daily_quota),
        DAILY_QUOTA_WITH_LINK=str(args.daily_quota),
        WARMUP_DAYS="0",  # new accounts at the full quota at once
        MIN_PAUSE_SECONDS=str(args.min_pause),
        ACCOUNT_LEASE_SECONDS=str(LEASE_SECONDS),
        TARGET_LEASE_SECONDS=str(LEASE_SECONDS),
        POLL_INTERVAL_SECONDS="0.5",
        RETRY_BACKOFF_SECONDS="0.5",
        RETRY_BACKOFF_MAX_SECONDS="2",
        MAX_TARGETS_PER_TASK=str(args.targets),
        DB_POOL_MAX="12",
        FLEET_GAUGES_INTERVAL_SECONDS="60",
        SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_BOUND),
    )
    return env


# --- the campaign -----------------------------------------------------------------------------


async def create_campaign(http: httpx.AsyncClient, replica: Replica, targets: int, tasks: int) -> list[str]:
    """``tasks`` tenants, each with a started send_messages task holding its share of the people."""
    created = []
    share = [targets // tasks + (1 if i < targets % tasks else 0) for i in range(tasks)]
    for tenant, count in enumerate(share, start=1):
        headers = tenant_headers(tenant)
        people = [f"chaos_{tenant}_{n:06d}" for n in range(count)]
        task_id = await campaigns.message_task(
            http,
            replica.url,
            headers,
            title=f"chaos {tenant}",
            usernames=people,
            template="Hello {first_name}, a message from the chaos run",
        )
        await campaigns.start(http, replica.url, headers, task_id)
        created.append(task_id)
    return created


class Progress:
    """Finished targets and completed tasks, read straight from the database (reconnecting)."""

    def __init__(self, url: str, task_ids: list[str], total: int) -> None:
        self.url = url
        self.task_ids = task_ids
        self.total = total
        self.conn: asyncpg.Connection | None = None

    async def read(self) -> tuple[int, int] | None:
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(self.url, timeout=2)
            row = await self.conn.fetchrow(
                """SELECT (SELECT count(*) FROM invite_targets WHERE task_id = ANY($1::uuid[])
                           AND status = ANY($2::text[])),
                          (SELECT count(*) FROM invite_tasks WHERE id = ANY($1::uuid[]) AND status = 'completed')""",
                self.task_ids,
                list(FINAL),
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self.conn = None
            return None
        assert row is not None
        return row[0], row[1]

    async def close(self) -> None:
        if self.conn is not None and not self.conn.is_closed():
            await self.conn.close()


@dataclass
class Events:
    kills: list[tuple[float, str]] = field(default_factory=list)  # (unix time, replica id)
    pg_restarts: list[tuple[float, float]] = field(default_factory=list)  # (down at, up again at)
    # person key → (unix time the suppression was answered, whether a target of theirs was in flight then)
    suppressed: dict[str, tuple[float, bool]] = field(default_factory=dict)
    sigterm: dict[str, Any] = field(default_factory=dict)


def tenant_headers(tenant: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, str(tenant), timedelta(hours=2))}"}


async def suppress_someone(
    http: httpx.AsyncClient, replica: Replica, progress: Progress, events: Events, rng: random.Random
) -> None:
    """Tenant 1 suppresses a person of its task the engine is on: in flight if any, else pending."""
    conn = await asyncpg.connect(progress.url, timeout=5)
    try:
        rows = await conn.fetch(
            """SELECT identifier_key, user_identifier, status FROM invite_targets
               WHERE task_id = $1::uuid AND status IN ('in_flight', 'pending') AND NOT (identifier_key = ANY($2))
               ORDER BY status = 'in_flight' DESC, seq LIMIT 20""",
            progress.task_ids[0],
            list(events.suppressed),
        )
        if not rows:
            return
        in_flight = [r for r in rows if r["status"] == "in_flight"]
        person = rng.choice(in_flight or rows)
        answer = await http.post(
            f"{replica.url}{PREFIX}/suppressions",
            json={"identifiers": [person["user_identifier"]], "reason": "chaos: asked to stop"},
            headers=tenant_headers(1),
        )
        if answer.status_code != 201:
            raise RuntimeError(f"suppression failed: {answer.status_code} {answer.text[:300]}")
        answered = time.time()
        in_flight = await conn.fetchval(
            "SELECT count(*) FROM invite_targets WHERE identifier_key = $1 AND status = 'in_flight'",
            person["identifier_key"],
        )
        events.suppressed[person["identifier_key"]] = (answered, in_flight > 0)
    finally:
        await conn.close()


async def sigterm_with_slow_clients(
    http: httpx.AsyncClient, replica: Replica, progress: Progress, events: Events
) -> None:
    """SIGTERM a replica that has an unread event stream and slow uploads attached; start it again."""
    assert replica.process is not None
    token = issue_token(SECRET, "1", timedelta(hours=2))
    async with SlowClients(replica.port, token, progress.task_ids[0]):
        await asyncio.sleep(1.0)
        began = time.monotonic()
        replica.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(replica.process.wait, SHUTDOWN_BOUND + 10)
        took = time.monotonic() - began
    if replica.process.poll() is None:
        replica.kill()
    replica.up = False
    conn = await asyncpg.connect(progress.url, timeout=5)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM invite_accounts WHERE lease_owner = $1 AND lease_expires_at > now()",
            replica.env["REPLICA_ID"],
        )
    finally:
        await conn.close()
    events.sigterm = {
        "replica": replica.env["REPLICA_ID"],
        "exit_s": round(took, 2),
        "bound_s": SHUTDOWN_BOUND,
        "forced": replica.process.returncode == 70,
        "leases_left": int(left),
    }
    log(f"SIGTERM with slow clients: {events.sigterm}")
    replica.start()
    await wait_ready(http, replica)


async def chaos(
    args: argparse.Namespace,
    http: httpx.AsyncClient,
    replicas: list[Replica],
    postgres: PrivatePostgres,
    progress: Progress,
    rng: random.Random,
) -> Events:
    events = Events()
    kill_points = sorted(rng.uniform(0.03, 0.9) for _ in range(args.kills))
    suppress_points = sorted(rng.uniform(0.05, 0.85) for _ in range(args.suppressions))
    sigterm_point = rng.uniform(0.4, 0.6) if args.sigterm else None
    pg_point = rng.uniform(0.35, 0.65) if args.pg_restart else None
    restarting: set[asyncio.Task[None]] = set()
    deadline = time.monotonic() + args.timeout
    done = False
    while time.monotonic() < deadline and not done:
        read = await progress.read()
        if read is None:
            await asyncio.sleep(0.2)
            continue
        finished, completed = read
        share = finished / progress.total
        done = completed == len(progress.task_ids)
        if pg_point is not None and share >= pg_point:
            down = time.time()
            log(f"restarting PostgreSQL at {share:.0%}")
            await asyncio.to_thread(postgres.restart)
            events.pg_restarts.append((down, time.time()))
            pg_point = None
        up = [r for r in replicas if r.up]
        if suppress_points and share >= suppress_points[0] and up:
            suppress_points.pop(0)
            with contextlib.suppress(httpx.HTTPError, OSError, asyncpg.PostgresError):
                await suppress_someone(http, rng.choice(up), progress, events, rng)
        if sigterm_point is not None and share >= sigterm_point and up:
            sigterm_point = None
            await sigterm_with_slow_clients(http, rng.choice(up), progress, events)
            continue
        if kill_points and share >= kill_points[0] and up:
            victim = rng.choice(up)
            victim.kill()
            events.kills.append((time.time(), victim.env["REPLICA_ID"]))
            kill_points.pop(0)
            log(f"kill {len(events.kills)}/{args.kills}: {victim.env['REPLICA_ID']} at {share:.0%}")
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            victim.start()
            task = asyncio.create_task(wait_ready(http, victim))
            restarting.add(task)
            task.add_done_callback(restarting.discard)
        await asyncio.sleep(0.1)
    for task in list(restarting):
        await task
    if not done:
        log(f"the campaign did not complete within {args.timeout} s")
    return events


# --- the verdict ------------------------------------------------------------------------------


def quota_violations(actions: list[SandboxAction], min_pause: float, daily_quota: int) -> dict[str, Any]:
    """Per account: actions closer than the pause to the previous one; more than the quota in 24 h."""
    by_account: dict[str, list[datetime]] = defaultdict(list)
    for action in actions:
        by_account[action.account_id].append(action.at)
    too_close, over_quota, smallest = 0, 0, None
    for times in by_account.values():
        times.sort()
        window_start = 0
        for i in range(1, len(times)):
            gap = (times[i] - times[i - 1]).total_seconds()
            smallest = gap if smallest is None else min(smallest, gap)
            if gap < min_pause:
                too_close += 1
            while times[i] - times[window_start] >= timedelta(days=1):
                window_start += 1
            if i - window_start + 1 > daily_quota:
                over_quota += 1
    return {
        "too_close": too_close,
        "over_quota": over_quota,
        "smallest_gap_s": None if smallest is None else round(smallest, 4),
        "accounts": len(by_account),
    }


def explain(
    uncertain: list[asyncpg.Record], events: Events, sent: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each uncertain target and the kill (or database restart) during its lease."""
    explained, unexplained = [], []
    for row in uncertain:
        # the lease ran from the claim to ``expires``: the holder died (or lost its database)
        # while it was live; the owner is kept by the sweep, cleared by a restart's recovery and
        # by a reconciliation, which keeps when the attempt began instead
        if row["attempt_since"] is not None:
            expires: float | None = row["attempt_since"].timestamp() + LEASE_SECONDS
        else:
            expires = row["lease_expires_at"].timestamp() if row["lease_expires_at"] else None
        cause = None
        if expires is not None:
            claimed = expires - LEASE_SECONDS - 0.2
            for at, replica in events.kills:
                if claimed <= at <= expires + 0.2 and row["lease_owner"] in (None, replica):
                    cause = f"{replica} killed"
                    break
            for down, back in events.pg_restarts:
                if cause is None and claimed <= back and down <= expires + 0.2:
                    cause = "PostgreSQL restarted"
        if cause is None:
            unexplained.append(row["identifier_key"])
        else:
            explained.append(
                {"target": row["identifier_key"], "delivered": row["identifier_key"] in sent, "cause": cause}
            )
    return explained, unexplained


async def verdict(
    url: str, task_ids: list[str], record: Path, events: Events, args: argparse.Namespace
) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        by_status = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT status, count(*) FROM invite_targets WHERE task_id = ANY($1::uuid[]) GROUP BY 1",
                task_ids,
            )
        }
        uncertain = await conn.fetch(
            """SELECT identifier_key, lease_owner, lease_expires_at,
                      (result ->> 'attempt_since')::timestamptz AS attempt_since
               FROM invite_targets WHERE task_id = ANY($1::uuid[]) AND status = 'uncertain'""",
            task_ids,
        )
        reconciled = {
            r[0]: r[1]
            for r in await conn.fetch(
                """SELECT status, count(*) FROM invite_execution_logs
                   WHERE task_id = ANY($1::uuid[]) AND action = 'check_delivery' GROUP BY 1""",
                task_ids,
            )
        }
        succeeded = {
            r[0]
            for r in await conn.fetch(
                "SELECT identifier_key FROM invite_targets WHERE task_id = ANY($1::uuid[]) AND status = 'succeeded'",
                task_ids,
            )
        }
        tasks = [
            r[0]
            for r in await conn.fetch("SELECT status FROM invite_tasks WHERE id = ANY($1::uuid[])", task_ids)
        ]
    finally:
        await conn.close()
    actions = read_record(record)
    messages = sends_per_target(actions, ActionKind.MESSAGE)
    delivered = {key for (_, _, key) in messages}
    quota = quota_violations(actions, args.min_pause, args.daily_quota)
    explained, unexplained = explain(uncertain, events, delivered)
    after = {  # messages to each suppressed person that began after the suppression was answered
        key: [
            a
            for a in actions
            if a.target_key == key and a.action is ActionKind.MESSAGE and a.at.timestamp() > at
        ]
        for key, (at, _) in events.suppressed.items()
    }
    return {
        "lost": sum(by_status.get(s, 0) for s in UNFINISHED),
        "duplicate_messages": sum(n - 1 for n in messages.values() if n > 1),
        "quota_violations": quota["too_close"] + quota["over_quota"],
        "uncertain": len(uncertain),
        "uncertain_delivered": sum(1 for e in explained if e["delivered"]),
        "uncertain_explained": len(explained),
        "uncertain_unexplained": unexplained,
        "uncertain_causes": explained[:50],
        "reconciled": reconciled,
        "succeeded_without_delivery": len(succeeded - delivered),
        "suppressions": len(events.suppressed),
        # one may be the message already in flight when the suppression was answered
        "actions_after_suppression": sum(
            max(0, len(after[key]) - in_flight) for key, (_, in_flight) in events.suppressed.items()
        ),
        "sigterm": events.sigterm or None,
        "kills": len(events.kills),
        "pg_restarts": len(events.pg_restarts),
        "targets": args.targets,
        "by_status": by_status,
        "tasks": tasks,
        "actions": len(actions),
        "quota": quota,
    }


# --- the run ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    postgres = PrivatePostgres(base)
    log(f"private PostgreSQL in {base} on port {postgres.port}")
    await asyncio.to_thread(postgres.init)
    await asyncio.to_thread(postgres.start)
    try:
        admin = await asyncpg.connect(postgres.url("postgres"))
        await admin.execute("CREATE DATABASE invite_chaos")
        await admin.close()
        url = schema_url(postgres.url("invite_chaos"))  # our tables' schema, for the bench's connections too
        conn = await asyncpg.connect(url)
        await migrate(conn, str(ROOT / "sql"))
        await conn.close()
        record = base / "sandbox.jsonl"
        replicas = [
            Replica(i, replica_env(i, args, url, record, base), base / f"replica-{i}.log") for i in range(2)
        ]
        async with httpx.AsyncClient(timeout=30) as http:
            for replica in replicas:
                replica.start()
            try:
                await asyncio.gather(*(wait_ready(http, r) for r in replicas))
                log("replicas ready; creating the campaign")
                task_ids = await create_campaign(http, replicas[0], args.targets, args.tasks)
                began = time.monotonic()
                progress = Progress(url, task_ids, args.targets)
                events = await chaos(args, http, replicas, postgres, progress, rng)
                duration = time.monotonic() - began
                await progress.close()
            finally:
                for replica in replicas:
                    replica.stop()
        result = await verdict(url, task_ids, record, events, args)
        result["duration_s"] = round(duration, 1)
        result["targets_per_s"] = round(args.targets / duration, 1)
        return result
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(postgres.stop, "immediate")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=2, help="tenants, one task each (default 2)")
    parser.add_argument("--accounts", type=int, default=40, help="sandbox accounts per tenant")
    parser.add_argument("--min-pause", type=float, default=0.5, help="MIN_PAUSE_SECONDS (default 0.5)")
    parser.add_argument("--daily-quota", type=int, default=10_000_000)
    parser.add_argument("--no-pg-restart", dest="pg_restart", action="store_false")
    parser.add_argument(
        "--suppressions", type=int, default=20, help="people suppressed during the campaign (default 20)"
    )
    parser.add_argument(
        "--no-sigterm", dest="sigterm", action="store_false", help="no SIGTERM with slow clients attached"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the campaign")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, record)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    base = Path(tempfile.mkdtemp(prefix="invite-chaos-"))
    try:
        result = asyncio.run(run(args, base))
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(msgspec.json.encode(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
