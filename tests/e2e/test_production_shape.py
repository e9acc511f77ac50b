"""The production shape, run here without containers: the monitoring a customer relies on, end to end.

Two ``invite serve`` replicas (distinct ``REPLICA_ID``s) share a fresh PostgreSQL database and
a real Redis; a real Prometheus server (Debian's ``prometheus``) scrapes both every second and
loads ``deploy/alerts.yml`` — through a copy whose ``for:`` durations are shortened to 1 s, the
rules themselves unchanged. A sandbox campaign then produces what the alerts are about:

* tenant A's task, two of whose four accounts are dead and whose live ones get PeerFlood
  after two actions: a quarter of the fleet blocked fires ``InviteBlockedAccountsHigh``;
  tenant D's four healthy accounts joining bring the share under 20 % and it clears;
* tenant C's task may send during one minute twelve hours from now only, so it never acts
  here; its start is moved two hours back (an hour of real silence does not fit in a test) and ``InviteTaskStuck``
  fires; cancelling the task clears it;
* the replica holding account leases is SIGKILLed: ``InviteReplicaDown`` fires for it and the
  other replica takes its leases over.

Every panel of ``deploy/grafana/invite-service.json`` (the dashboard compose.yaml provisions)
is evaluated against this Prometheus and must return series. Skipped only where the
``prometheus`` binary is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import yaml

from invite.kernel.auth import issue_token
from invite.kernel.db import schema_url
from invite.kernel.settings import ROOT
from tests.conftest import REDIS_URL
from tests.ports import free_port

PROMETHEUS = shutil.which("prometheus")
DEPLOY = ROOT / "deploy"
PREFIX = "/api/v1/invite"
SECRET = "production-shape-" + "x" * 32
REPLICAS = ("invite-a", "invite-b")
LEASE_SECONDS = 3.0
# tenants: A has dead accounts, C a task that never acts, D healthy accounts
TENANT_A, TENANT_C, TENANT_D = "7100001", "7100003", "7100004"
PROFILE = {
    "dead_accounts": [f"sandbox-{TENANT_A}-1", f"sandbox-{TENANT_A}-2"],
    "peer_flood_after": 2,
}  # no FloodWait: the cooldown after one (a minute or more) would outlast the test
# the brief's metrics; the fleet gauges are read from the database by every replica
BRIEF = (
    "invite_tasks_total",
    "invite_targets_processed_total",
    "invite_accounts_blocked_total",
    "invite_floodwait_events_total",
    "invite_task_duration_seconds_bucket",
    "invite_active_tasks",
)
FLEET = ("invite_accounts_by_status", "invite_targets_pending", "invite_running_task_idle_seconds_max")
T = TypeVar("T")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (Debian package prometheus)"),
]


class Process:
    """A child process with its output in a log file, shown when an assertion fails."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self.killed = False
        with log.open("w") as out:
            self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Replica(Process):
    def __init__(self, replica_id: str, database_url: str, tmp: Path) -> None:
        self.replica_id = replica_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "VAULT_"))}
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=REDIS_URL,
            HOST="127.0.0.1",
            PORT=str(self.port),
            REPLICA_ID=replica_id,
            DATA_DIR=str(tmp / replica_id),
            JWT_SECRET=SECRET,
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
            TELEGRAM_DRIVER="sandbox",
            SANDBOX_PROFILE=json.dumps(PROFILE),
            SANDBOX_ACCOUNTS_PER_TENANT="4",
            MIN_PAUSE_SECONDS="0.2",
            DAILY_QUOTA="10000000",  # pacing spreads the quota over the day: make it moot
            DAILY_QUOTA_WITH_LINK="10000000",
            WARMUP_DAYS="0",  # new accounts at the full quota at once
            ACCOUNT_LEASE_SECONDS=str(LEASE_SECONDS),
            TARGET_LEASE_SECONDS=str(LEASE_SECONDS),
            POLL_INTERVAL_SECONDS="0.3",
            FLEET_GAUGES_INTERVAL_SECONDS="1",
            DB_POOL_MIN="2",
            DB_POOL_MAX="4",
            ENGINE_DB_POOL_MAX="6",
        )
        super().__init__(
            replica_id, [sys.executable, "-m", "invite", "serve"], tmp / f"{replica_id}.log", env
        )


def shortened_rules(tmp: Path) -> Path:
    """deploy/alerts.yml with every ``for:`` shortened to 1 s; expressions and labels as they are."""
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = tmp / "alerts-test.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def prometheus_config(tmp: Path, replicas: list[Replica]) -> Path:
    """deploy/prometheus.yml's job, every second, aimed at the replicas on loopback."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"}
    config["rule_files"] = [str(shortened_rules(tmp))]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "invite"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{r.port}" for r in replicas]}]
    config["scrape_configs"] = [job]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float, processes: list[Process]
) -> T:
    """``check()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        exited = [p.name for p in processes if p.popen.poll() is not None and not p.killed]
        if exited:
            pytest.fail(f"{what}: {exited} exited\n" + "\n".join(p.tail() for p in processes))
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n" + "\n".join(p.tail() for p in processes))
        await asyncio.sleep(0.25)


class Stack:
    def __init__(
        self, http: httpx.AsyncClient, prometheus: str, replicas: list[Replica], db: asyncpg.Connection
    ):
        self.http = http
        self.prometheus = prometheus
        self.replicas = replicas
        self.db = db
        self.processes: list[Process] = []

    async def query(self, promql: str) -> list[dict[str, Any]]:
        answer = (await self.http.get(f"{self.prometheus}/api/v1/query", params={"query": promql})).json()
        assert answer["status"] == "success", (promql, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        answer = (await self.http.get(f"{self.prometheus}/api/v1/alerts")).json()
        return [a for a in answer["data"]["alerts"] if a["labels"]["alertname"] == name]

    async def firing(self, name: str) -> list[dict[str, Any]]:
        return [a for a in await self.alerts(name) if a["state"] == "firing"]

    async def eventually(self, check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30) -> T:
        return await eventually(check, what, timeout, self.processes)

    async def campaign(self, replica: Replica, tenant: str, people: int, **task: Any) -> str:
        headers = self.headers(tenant)
        body = {"platform": "telegram", "task_type": "send_messages", "title": f"tenant {tenant}"}
        body |= {"message_template": "Hello {first_name}", **task}
        created = await self.http.post(f"{replica.url}{PREFIX}/tasks", json=body, headers=headers)
        assert created.status_code == 201, created.text
        task_id: str = created.json()["id"]
        rows = ["username,first_name", *(f"shape_{tenant}_{n:04d},Name{n}" for n in range(people))]
        imported = await self.http.post(
            f"{replica.url}{PREFIX}/import/file",
            files={"file": ("people.csv", "\n".join(rows).encode(), "text/csv")},
            data={"task_id": task_id},
            headers=headers,
        )
        assert imported.status_code == 201, imported.text
        started = await self.http.post(f"{replica.url}{PREFIX}/tasks/{task_id}/start", headers=headers)
        assert started.status_code == 200, started.text
        return task_id

    @staticmethod
    def headers(tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(SECRET, tenant, timedelta(hours=1))}"}


@contextlib.contextmanager
def running(processes: list[Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
async def stack(fresh_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    assert PROMETHEUS is not None
    replicas = [Replica(replica_id, fresh_database_url, tmp_path) for replica_id in REPLICAS]
    port = free_port()
    prometheus = Process(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={prometheus_config(tmp_path, replicas)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    processes: list[Process] = [*replicas, prometheus]
    with running(processes):
        db = await asyncpg.connect(schema_url(fresh_database_url))
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                stack = Stack(http, f"http://127.0.0.1:{port}", replicas, db)
                stack.processes = processes

                async def all_up() -> bool:
                    try:
                        ready = await http.get(f"{stack.prometheus}/-/ready")
                    except httpx.ConnectError:  # not listening yet
                        return False
                    if ready.status_code != 200:
                        return False
                    up = await stack.query('up{job="invite"} == 1')
                    return len(up) == len(replicas)

                await stack.eventually(all_up, "Prometheus scrapes both replicas", timeout=60)
                yield stack
        finally:
            await db.close()


async def test_alerts_fire_and_clear_and_a_killed_replica_is_taken_over(stack: Stack) -> None:
    first, second = stack.replicas
    by_instance = {f"127.0.0.1:{r.port}": r for r in stack.replicas}

    # --- a quarter of the fleet blocked: A's two dead accounts among A's and C's eight ---------
    await stack.campaign(first, TENANT_A, 40)
    window = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:00")
    closed = {"send_window": {"start": window, "end": window.replace(":00", ":01")}}
    stuck_task = await stack.campaign(second, TENANT_C, 20, settings=closed)
    blocked = await stack.eventually(
        lambda: stack.firing("InviteBlockedAccountsHigh"), "InviteBlockedAccountsHigh fires"
    )
    assert blocked[0]["labels"]["platform"] == "telegram"
    assert float(blocked[0]["value"]) > 0.2

    async def peer_floods() -> list[dict[str, Any]]:
        return await stack.query('sum(invite_engine_cooldowns_total{reason="peer_flood"}) > 0')

    await stack.eventually(peer_floods, "PeerFlood cooldowns counted")

    # the fleet gauges are scraped from both replicas and equal under max()
    for name in (*FLEET, "invite_active_tasks"):
        instances = {s["metric"]["instance"] for s in await stack.query(name)}
        assert instances == set(by_instance), (name, instances)

    async def gauges_agree() -> bool:
        spread = await stack.query(
            "max by (platform, status) (invite_accounts_by_status)"
            " - min by (platform, status) (invite_accounts_by_status)"
        )
        return bool(spread) and all(float(s["value"][1]) == 0 for s in spread)

    await stack.eventually(gauges_agree, "both replicas report the same accounts by status")

    # --- D's healthy accounts join: 2 of 12 blocked, under 20 % ---------------------------------
    # 4 people for 4 accounts: too few for the breaker's 3 PeerFloods, so the task completes
    await stack.campaign(first, TENANT_D, 4)

    async def blocked_cleared() -> bool:
        return not await stack.alerts("InviteBlockedAccountsHigh")

    await stack.eventually(blocked_cleared, "InviteBlockedAccountsHigh clears")

    async def completed() -> list[dict[str, Any]]:  # D's duration is observed when it completes
        return await stack.query("sum(invite_task_duration_seconds_count) > 0")

    await stack.eventually(completed, "tenant D's task completes")

    # --- C's task has not acted for two hours ---------------------------------------------------
    # why a direct write: the engine never touches a task whose window is closed, and an hour
    # of real silence does not fit in a test; moving its start back is what the hour would do
    await stack.db.execute(
        "UPDATE invite_tasks SET started_at = started_at - interval '2 hours',"
        " updated_at = updated_at - interval '2 hours' WHERE id = $1",
        stuck_task,
    )
    await stack.eventually(lambda: stack.firing("InviteTaskStuck"), "InviteTaskStuck fires")

    # --- the replica holding leases dies --------------------------------------------------------
    held = await stack.db.fetch(
        "SELECT lease_owner, count(*) AS n FROM invite_accounts"
        " WHERE lease_owner IS NOT NULL AND lease_expires_at > now() GROUP BY lease_owner ORDER BY n DESC"
    )
    assert held, "no account is leased"
    victim = next(r for r in stack.replicas if r.replica_id == held[0]["lease_owner"])
    survivor = second if victim is first else first
    victim_accounts = {
        r["id"]
        for r in await stack.db.fetch(
            "SELECT id FROM invite_accounts WHERE lease_owner = $1 AND lease_expires_at > now()",
            victim.replica_id,
        )
    }
    victim.killed = True
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait()

    down = await stack.eventually(lambda: stack.firing("InviteReplicaDown"), "InviteReplicaDown fires")
    assert [by_instance[a["labels"]["instance"]] for a in down] == [victim]

    async def taken_over() -> bool:
        owners = await stack.db.fetch(
            "SELECT id, lease_owner FROM invite_accounts WHERE id = ANY($1::text[])", list(victim_accounts)
        )
        return all(r["lease_owner"] == survivor.replica_id for r in owners)

    await stack.eventually(taken_over, f"{survivor.replica_id} takes over {sorted(victim_accounts)}")

    async def takeovers_counted() -> list[dict[str, Any]]:
        return await stack.query(
            f'invite_engine_lease_takeovers_total{{instance="127.0.0.1:{survivor.port}"}} > 0'
        )

    await stack.eventually(takeovers_counted, "the survivor's takeovers scraped")

    # --- the stuck task is cancelled: the alert clears -------------------------------------------
    cancelled = await stack.http.post(
        f"{survivor.url}{PREFIX}/tasks/{stuck_task}/cancel", headers=stack.headers(TENANT_C)
    )
    assert cancelled.status_code == 200, cancelled.text

    async def stuck_cleared() -> bool:
        return not await stack.alerts("InviteTaskStuck")

    await stack.eventually(stuck_cleared, "InviteTaskStuck clears")

    # --- the brief's metrics were scraped ------------------------------------------------------
    # over the last minutes: the killed replica's series went stale when its scrapes failed
    for name in BRIEF:
        if name == "invite_floodwait_events_total":
            continue  # none happened: a labelled counter has no series until then (checked below)
        assert await stack.query(f"max_over_time({name}[5m])"), f"{name} not scraped"
    # and every one of them is in the survivor's exposition, observed or not
    exposition = (await stack.http.get(f"{survivor.url}/metrics")).text
    for name in BRIEF:
        family = name.removesuffix("_bucket")
        assert f"# TYPE {family} " in exposition, family

    # --- every panel of the dashboard answers with series ----------------------------------------
    dashboard = json.loads((DEPLOY / "grafana" / "invite-service.json").read_text())
    empty = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
        if not await stack.query(target["expr"])
    ]
    assert not empty, empty


def test_compose_provisions_the_dashboard_on_prometheus() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    mounts = services["grafana"]["volumes"]
    assert "./deploy/grafana/invite-service.json:/var/lib/grafana/dashboards/invite-service.json:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    provisioning = DEPLOY / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "invite-service.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in services
    dashboard = json.loads((DEPLOY / "grafana" / "invite-service.json").read_text())
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {source["uid"]}
