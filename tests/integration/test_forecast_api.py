"""/status's rate, accounts by state and ETA, and GET /tasks/{id}/forecast, over rows written
as the engine writes them; before start, the accounts the provider lists. (The real clock: a
virtual one would move while the app's background services sleep. The answers say the
moment they were computed for, and the rows are written relative to now.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, auth_headers, invite_task, new_tenant

GAP = 86_400 / 40  # a fresh account paced over the day at 40 a day


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """No engine (these tests write its rows), the brief's quotas, three sandbox accounts, at
    the full quota from their first day (the warm-up's test turns it on)."""
    return msgspec.structs.replace(
        settings,
        engine_enabled=False,
        daily_quota=40,
        min_pause_seconds=15.0,
        sandbox_accounts_per_tenant=3,
        **({"warmup_days": 0} | getattr(request, "param", {})),
    )


async def new_task(
    client: Client, headers: dict[str, str], people: int, pool: asyncpg.Pool, **kw: Any
) -> str:
    response = await client.post(f"{PREFIX}/tasks", json=invite_task(**kw), headers=headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
           SELECT $1, 'user' || n, 'u:user' || n FROM generate_series(1, $2) AS n""",
        uuid.UUID(task_id),
        people,
    )
    return task_id


async def forecast_of(client: Client, headers: dict[str, str], task_id: str) -> Any:
    response = await client.get(f"{PREFIX}/tasks/{task_id}/forecast", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_before_start_the_forecast_uses_the_accounts_the_task_would_get(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    body = await forecast_of(client, headers, await new_task(client, headers, 240, pool))
    # three fresh accounts at 40 a day: 240 people are 80 a day... for three days less a gap
    assert (body["status"], body["remaining"], body["accounts"], body["people_per_day"]) == (
        "draft",
        240,
        3,
        120,
    )
    assert body["accounts_by_state"] == {"active": 3}
    assert body["limited_by"] == ["quota"]
    finish = datetime.fromisoformat(body["generated_at"]) + timedelta(seconds=79 * GAP)
    assert datetime.fromisoformat(body["finish_at"]) == finish
    assert body["days"] == pytest.approx(79 * GAP / 86_400, abs=1e-3)


@pytest.mark.parametrize("settings", [{"warmup_days": 14, "warmup_start_per_day": 5}], indirect=True)
async def test_before_start_the_forecast_holds_fresh_accounts_to_their_warm_up(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    body = await forecast_of(client, headers, await new_task(client, headers, 240, pool))
    # three fresh accounts on day 1 of 14: 5 a day each today, then 7, 10, 12, 15, 17, 20 ...
    # (5 + 35 * (day - 1) // 14): their 80 each are reached on day 7, not in two days
    assert (body["accounts"], body["people_per_day"]) == (3, 15)
    assert body["accounts_by_state"] == {"warming_up": 3}
    assert body["limited_by"] == ["quota", "warm_up"]
    assert 6 < body["days"] < 7


async def test_the_forecast_follows_the_settings_a_link_and_a_send_window(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, tenant: str
) -> None:
    one = f"sandbox-{tenant}-1"
    task_id = await new_task(
        client,
        headers,
        12,
        pool,
        task_type="send_messages",
        target_group_id=None,
        message_template="Hi {first_name}, see https://example.com",
        settings={
            "account_ids": [one],
            "send_window": {"start": "10:00", "end": "14:00", "timezone": "Europe/Moscow"},
        },
    )
    body = (await client.get(f"{PREFIX}/tasks/{task_id}/forecast", headers=headers)).json()
    # one account at the link quota, 10 a day, paced over a 4 h window (07:00-11:00 UTC) at one
    # every 24 min: the last two of the twelve wait for another day's quota and window
    assert (body["accounts"], body["people_per_day"]) == (1, 10)
    assert body["limited_by"] == ["quota", "send_window"]
    now = datetime.fromisoformat(body["generated_at"])
    finish = datetime.fromisoformat(body["finish_at"])
    assert finish.date() > now.date()
    assert time(7) <= finish.astimezone(UTC).time() < time(11)


async def test_status_while_running_gives_rate_accounts_by_state_and_eta(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, tenant: str
) -> None:
    task_id = await new_task(client, headers, 100, pool)
    tid = uuid.UUID(task_id)
    now = datetime.now(UTC)  # the moment the rows are written for
    await pool.execute("UPDATE invite_tasks SET status = 'running', started_at = $2 WHERE id = $1", tid, now)
    accounts = [
        # id, status, reason, cooldown, window start, count, last action, multiplier, in task
        ("a-ready", "active", None, None, None, 0, None, 1.0, "active"),
        (
            "a-pacing",
            "active",
            None,
            None,
            now - timedelta(minutes=5),
            3,
            now - timedelta(minutes=5),
            1.0,
            "active",
        ),
        ("a-flood", "cooldown", "FloodWait 3600 s", now + timedelta(hours=1), None, 0, None, 2.0, "cooldown"),
        (
            "a-spam",
            "cooldown",
            "spam flag (PeerFlood): resting 24 h",
            now + timedelta(hours=24),
            None,
            0,
            None,
            1.0,
            "cooldown",
        ),
        ("a-dead", "blocked", "deactivated", None, None, 0, None, 1.0, "blocked"),
        ("a-noright", "active", None, None, None, 0, None, 1.0, "excluded"),
    ]
    await pool.executemany(
        """INSERT INTO invite_accounts (id, user_id, status, status_reason, cooldown_until,
               daily_window_start, daily_count, last_action_at, pace_multiplier)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        [(a[0], tenant, *a[1:8]) for a in accounts],
    )
    await pool.executemany(
        "INSERT INTO invite_task_accounts (task_id, account_id, platform, status) VALUES ($1, $2, 'telegram', $3)",
        [(tid, a[0], a[8]) for a in accounts],
    )
    ids = await pool.fetch("SELECT id FROM invite_targets WHERE task_id = $1 ORDER BY seq LIMIT 6", tid)
    await pool.executemany(
        """INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, created_at)
           VALUES ($1, $2, 'a-pacing', 'invite_to_group', 'success', $3)""",
        [(tid, r["id"], now - timedelta(minutes=20 * n + 5)) for n, r in enumerate(ids)],
    )
    # the link watcher's rows (people who joined through a link): no account spent an action on them
    await pool.executemany(
        """INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, created_at)
           VALUES ($1, $2, 'a-pacing', 'invite_link', 'joined_via_link', $3)""",
        [(tid, r["id"], now - timedelta(minutes=3)) for r in ids],
    )
    response = await client.get(f"{PREFIX}/tasks/{task_id}/status", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["counts"]["pending"]) == (100, 100)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)  # the rollup's hours
    logged = [now - timedelta(minutes=20 * n + 5) for n in range(6)]
    expected = sum(at >= since for at in logged) / ((now - since) / timedelta(hours=1))
    assert body["rate_per_hour"] == pytest.approx(expected, rel=0.05)
    assert body["accounts"] == {
        "active": 1,
        "pacing": 1,
        "cooling_down": 1,
        "spam_flagged": 1,
        "blocked": 1,
        "excluded": 1,
    }
    assert body["limited_by"] == ["quota", "cooldown", "accounts"]
    eta = datetime.fromisoformat(body["eta"])
    # four accounts can act, 160 a day: 100 people take 25 of each one's 36-min gaps (the
    # cooling ones start late, the pacing one after its gap), so well over 14 h, under a day
    assert now + timedelta(hours=14) < eta < now + timedelta(hours=24)
    forecast = (await client.get(f"{PREFIX}/tasks/{task_id}/forecast", headers=headers)).json()
    assert (forecast["accounts"], forecast["people_per_day"], forecast["remaining"]) == (4, 160, 100)
    # /status replays the first 50 reservations and goes on at the steady pace; the forecast
    # replays them all: within one pacing gap of each other
    assert abs(datetime.fromisoformat(forecast["finish_at"]) - eta) < timedelta(seconds=GAP)


async def test_forecast_and_status_are_the_tenants_own(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers, 1, pool)
    stranger = auth_headers(client, new_tenant())
    for path in ("forecast", "status"):
        response = await client.get(f"{PREFIX}/tasks/{task_id}/{path}", headers=stranger)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_settings_stored_past_their_bounds_give_no_plan_and_no_500(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    """A task whose stored settings the engine cannot use (stored before a bound existed) is
    paused by the engine; its status and forecast still answer, with nothing to plan with."""
    task_id = await new_task(client, headers, 3, pool)
    await pool.execute(
        """UPDATE invite_tasks SET settings = '{"min_pause_seconds": 1e12}' WHERE id = $1""",
        uuid.UUID(task_id),
    )
    status = await client.get(f"{PREFIX}/tasks/{task_id}/status", headers=headers)
    assert status.status_code == 200, status.text
    assert (status.json()["eta"], status.json()["accounts"], status.json()["limited_by"]) == (
        None,
        {},
        ["accounts"],
    )
    forecast = await client.get(f"{PREFIX}/tasks/{task_id}/forecast", headers=headers)
    assert (forecast.status_code, forecast.json()["finish_at"]) == (200, None)


async def test_before_start_the_forecast_expects_the_floodwaits_of_the_tenants_last_tasks(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    """The tenant's finished invite task met a FloodWait of an hour in every ten actions: its
    next one, before it has acted, expects as much and ends later than the clean 79 gaps."""
    done = uuid.UUID(await new_task(client, headers, 100, pool))
    await pool.execute("UPDATE invite_tasks SET status = 'completed' WHERE id = $1", done)
    await pool.execute(
        """INSERT INTO invite_execution_logs (task_id, account_id, action, status, details, created_at)
           SELECT $1, 'a', 'invite_to_group', CASE WHEN n % 10 = 0 THEN 'flood_wait' ELSE 'success' END,
                  CASE WHEN n % 10 = 0 THEN '{"seconds": 3600}' ELSE '{}' END::jsonb, now() - n * interval '1 minute'
           FROM generate_series(1, 100) AS n""",
        done,
    )
    task_id = await new_task(client, headers, 240, pool)
    body = (await client.get(f"{PREFIX}/tasks/{task_id}/forecast", headers=headers)).json()
    clean = datetime.fromisoformat(body["generated_at"]) + timedelta(seconds=79 * GAP)
    # about 27 FloodWaits in the 267 actions, 9 an account: each an hour and a minute of
    # cooling instead of a 36-min gap, a FloodWait's action a gap of its own
    assert (
        clean + timedelta(hours=6) < datetime.fromisoformat(body["finish_at"]) < clean + timedelta(hours=12)
    )
    assert body["people_per_day"] < 120
