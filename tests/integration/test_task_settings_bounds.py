"""No tenant's task settings can stall the engine for the others.

Every setting has a bound in its schema (a 422 naming it); a task whose stored row is unusable
anyway (written before the bounds) is paused with the reason while the others run on; and a
migration brings such stored values to their bounds.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invite.kernel.db import load_migrations
from invite.tasks import task_settings as bounds
from tests.conftest import SQL_DIR
from tests.integration.api import PREFIX, Client, invite_task
from tests.integration.engine.harness import open_scenario

TASKS = f"{PREFIX}/tasks"
NUMBERS = {
    "daily_limit_per_account": bounds.MAX_DAILY_LIMIT,
    "min_pause_seconds": bounds.MAX_PAUSE_SECONDS,
    "max_parallel_accounts": bounds.MAX_PARALLEL_ACCOUNTS,
    "max_attempts": bounds.MAX_ATTEMPTS,
    "recontact_days": bounds.MAX_RECONTACT_DAYS,
}
EXTREME = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 2**31, 2**63, 2**70, 10**6, 1e12, 1e308]),
)


@pytest.mark.parametrize("field", sorted(NUMBERS))
async def test_a_value_past_its_bound_is_a_422_naming_it(
    client: Client, headers: dict[str, str], field: str
) -> None:
    response = await client.post(TASKS, json=invite_task(settings={field: 2**70}), headers=headers)
    assert response.status_code == 422, response.text
    params = {p["name"]: p["reason"] for p in response.json()["invalid-params"]}
    assert f"settings.{field}" in params, params
    assert f"{NUMBERS[field]:g}" in params[f"settings.{field}"].replace(".0", "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(sorted(NUMBERS)), EXTREME, min_size=1))
async def test_any_numbers_are_a_task_or_a_named_422(
    client: Client, headers: dict[str, str], values: dict[str, Any]
) -> None:
    response = await client.post(TASKS, json=invite_task(settings=values), headers=headers)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        names = {p["name"] for p in response.json()["invalid-params"]}
        assert names, values
        assert names <= {f"settings.{k}" for k in values}, (names, values)
    else:  # what was accepted is within every bound, and reads back as written
        task = (await client.get(f"{TASKS}/{response.json()['id']}", headers=headers)).json()
        for key, value in values.items():
            assert task["settings"][key] == value
            assert value <= NUMBERS[key]


UNUSABLE = [
    {"max_parallel_accounts": 2**70},
    {"min_pause_seconds": 1e12},
    {"recontact_days": 10**6},
    {"max_attempts": "many"},
]


@pytest.mark.parametrize("stored", UNUSABLE, ids=lambda s: next(iter(s)))
async def test_an_unusable_stored_task_is_paused_and_the_others_run_on(
    fresh_database_url: str, stored: dict[str, Any]
) -> None:
    async with open_scenario(fresh_database_url) as scenario:
        bad = await scenario.add_task(targets=3, settings=stored, prefix="bad")
        good = await scenario.add_task(targets=5)
        async with scenario.running(2):
            await scenario.wait_for_status(good, "completed")
            await scenario.wait_for_status(bad, "paused")
        reason = await scenario.status_reason(bad)
        assert reason is not None
        assert next(iter(stored)) in reason
        assert await scenario.task_status(good) == "completed"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            "daily_limit_per_account": st.integers(1, 40),
            "min_pause_seconds": st.floats(15.0, bounds.MAX_PAUSE_SECONDS),
            "max_parallel_accounts": st.integers(1, bounds.MAX_PARALLEL_ACCOUNTS),
            "max_attempts": st.integers(1, 5),
            "recontact_days": st.integers(0, bounds.MAX_RECONTACT_DAYS),
        },
    )
)
def test_any_accepted_settings_run_beside_another_task(
    fresh_database_url: str, values: dict[str, Any]
) -> None:
    """Through a started task: whatever the API accepts, the engine serves both tasks."""
    asyncio.run(_beside(fresh_database_url, values))


async def _beside(url: str, values: dict[str, Any]) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    async with open_scenario(url) as scenario:
        task = await scenario.add_task(targets=2, user_id=tenant, settings=values, prefix="p")
        other = await scenario.add_task(targets=3, user_id=tenant, prefix="q")
        async with scenario.running(2):
            await scenario.wait_for_status(other, "completed", limit=30 * 86400.0)
            await scenario.wait_for_status(task, "completed", limit=30 * 86400.0, step=3600.0)


async def test_the_migration_brings_stored_values_to_their_bounds(pool: asyncpg.Pool) -> None:
    task_id = await pool.fetchval(
        """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, settings)
           VALUES ('legacy', 'telegram', 'invite_to_group', 'old', 'g', $1) RETURNING id""",
        {"max_parallel_accounts": 2**70, "min_pause_seconds": 1e12, "max_attempts": 3, "send_window": None},
    )
    (migration,) = [m for m in load_migrations(SQL_DIR) if "settings_bounds" in m.name]
    await pool.execute(migration.sql)
    stored = await pool.fetchval("SELECT settings FROM invite_tasks WHERE id = $1", task_id)
    assert stored == {
        "max_parallel_accounts": bounds.MAX_PARALLEL_ACCOUNTS,
        "min_pause_seconds": bounds.MAX_PAUSE_SECONDS,
        "max_attempts": 3,
        "send_window": None,
    }
