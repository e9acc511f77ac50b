"""Reports of a campaign the engine really ran (sandbox driver, virtual clock): every number
/stats and /report give agrees with the execution log and the targets, the export has one
row per target, retry-failed sends the failed ones round again, and /metrics shows the
brief's metrics."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import timedelta

import asyncpg
import msgspec
import polars as pl
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.platforms.sandbox import SandboxAccounts, SandboxProfile
from tests.integration.api import PREFIX
from tests.integration.engine.harness import open_scenario

TENANT = "777001"
PROFILE = SandboxProfile(
    not_found_rate=0.1,
    privacy_restricted_rate=0.1,
    already_member_rate=0.1,
    flood_wait_rate=0.05,
    flood_wait_seconds=(120.0,),
    transient_rate=0.3,
)


async def truth(pool: asyncpg.Pool, task_id: uuid.UUID) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Targets by status, log rows by outcome, log rows by account: counted the slow way."""
    targets = Counter(
        {
            r["status"]: r["n"]
            for r in await pool.fetch(
                "SELECT status, count(*) AS n FROM invite_targets WHERE task_id = $1 GROUP BY 1", task_id
            )
        }
    )
    outcomes = Counter(
        {
            r["status"]: r["n"]
            for r in await pool.fetch(
                "SELECT status, count(*) AS n FROM invite_execution_logs WHERE task_id = $1 GROUP BY 1",
                task_id,
            )
        }
    )
    accounts = Counter(
        {
            r["account_id"]: r["n"]
            for r in await pool.fetch(
                "SELECT account_id, count(*) AS n FROM invite_execution_logs WHERE task_id = $1 GROUP BY 1",
                task_id,
            )
        }
    )
    return targets, outcomes, accounts


async def test_reports_of_a_sandbox_campaign(fresh_database_url: str) -> None:
    async with open_scenario(fresh_database_url) as scenario:
        scenario.configure(PROFILE, seed=11, max_attempts=2, retry_backoff_seconds=60.0)
        settings, pool = scenario.settings, scenario.pool
        # the API without its engine; the campaign ran in simulated January: keep its log
        api_settings = msgspec.structs.replace(settings, engine_enabled=False, log_retention_days=3650)
        headers = {
            "Authorization": f"Bearer {issue_token(settings.jwt_secret or '', TENANT, timedelta(minutes=30))}"
        }
        task_id = await scenario.add_task(targets=60, user_id=TENANT)
        accounts = SandboxAccounts(4)
        async with scenario.running(accounts):
            await scenario.wait_for_status(task_id, "completed")
        targets, outcomes, by_account = await truth(pool, task_id)
        assert targets["failed"] > 0, "the profile should leave some transient failures"

        async with AsyncTestClient(app=create_app(api_settings)) as client:
            url = f"{PREFIX}/tasks/{task_id}"
            stats = (await client.get(f"{url}/stats", headers=headers)).json()
            assert {k: v for k, v in stats["targets"].items() if v} == dict(targets)
            assert stats["by_outcome"] == dict(outcomes)
            assert {a["account_id"]: a["actions"] for a in stats["by_account"] if a["actions"]} == dict(
                by_account
            )
            assert sum(h["actions"] for h in stats["by_hour"]) == sum(outcomes.values()) == stats["actions"]

            report = (await client.get(f"{url}/report", headers=headers)).json()
            assert report["final"] is True
            assert report["targets"]["total"] == 60
            assert report["targets"]["succeeded"] == targets["succeeded"]
            assert report["task"]["driver"] == "sandbox"

            csv_body = (await client.get(f"{url}/report?format=csv", headers=headers)).content
            frame = pl.read_csv(io.BytesIO(csv_body), infer_schema=False)
            assert frame.height == 60
            assert Counter(frame["status"].to_list()) == targets
            xlsx = pl.read_excel(
                io.BytesIO((await client.get(f"{url}/report?format=xlsx", headers=headers)).content)
            )
            assert xlsx.height == 60

            logs = (await client.get(f"{url}/logs", params={"limit": 500}, headers=headers)).json()
            assert len(logs["items"]) == sum(outcomes.values())
            failed_log = (
                await client.get(f"{url}/logs", params={"status": "transient"}, headers=headers)
            ).json()
            assert {i["status"] for i in failed_log["items"]} == {"transient"}

            retried = (await client.post(f"{url}/retry-failed", headers=headers)).json()
            assert retried == {
                "task_id": str(task_id),
                "requeued": targets["failed"],
                "skipped_suppressed": 0,
                "status": "running",
                "reopened": True,
            }

        # the engine picks the reopened task up again and finishes it
        async with scenario.running(accounts):
            await scenario.wait_for_status(task_id, "completed")
        after, outcomes_after, _ = await truth(pool, task_id)
        assert after["pending"] == 0
        assert sum(outcomes_after.values()) > sum(outcomes.values())
        assert after["failed"] < targets["failed"] or after["failed"] == 0
        async with AsyncTestClient(app=create_app(api_settings)) as client:
            stats = (await client.get(f"{PREFIX}/tasks/{task_id}/stats", headers=headers)).json()
            scrape = await client.get("/metrics")
        assert stats["by_outcome"] == dict(outcomes_after)

        # the brief's metrics, as Prometheus reads them (counters are per process: at least this run)
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        processed = families["invite_targets_processed"].samples
        # every target's final outcome, and the retried ones' second one
        assert sum(s.value for s in processed if s.name.endswith("_total")) >= 60 + targets["failed"]
        assert {s.labels["result"] for s in processed} >= {"success", "privacy_restricted", "not_found"}
        completed = [
            s
            for s in families["invite_tasks"].samples
            if s.name == "invite_tasks_total" and s.labels["status"] == "completed"
        ]
        assert completed
        assert completed[0].value >= 2
        assert families["invite_floodwait_events"].samples
        assert {
            "invite_task_duration_seconds",
            "invite_accounts_blocked",
            "invite_active_tasks",
            "invite_engine_claim_seconds",
        } <= set(families)
