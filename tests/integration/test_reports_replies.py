"""/stats of a message task: reply, opt-out and block rates, for the task and per account, from
the rows the engine writes (the execution log's rollup and the reply counters of 0017)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, insert_targets, message_task

T0 = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app without its engine: the test writes the engine's rows itself."""
    return msgspec.structs.replace(settings, engine_enabled=False)


async def sent(pool: asyncpg.Pool, task_id: uuid.UUID, account: str, statuses: list[str]) -> None:
    """One execution log row per status, as the group commit writes a message's outcome."""
    await pool.execute(
        """INSERT INTO invite_execution_logs (task_id, account_id, action, status, details, created_at)
           SELECT $1, $2, 'send_message', s, jsonb_build_object('outcome', s), $4 FROM unnest($3::text[]) s""",
        task_id,
        account,
        statuses,
        T0,
    )


async def test_stats_show_reply_opt_out_and_block_rates(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    response = await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)
    assert response.status_code == 201, response.text
    task_id = uuid.UUID(response.json()["id"])
    await insert_targets(pool, str(task_id), 10)
    await sent(pool, task_id, "acc-a", ["success"] * 5 + ["blocked"])
    await sent(pool, task_id, "acc-b", ["success"] * 3 + ["privacy_restricted"])  # one never reached
    await pool.execute(
        "INSERT INTO invite_reply_counts (task_id, account_id, replies, opt_outs) VALUES ($1, 'acc-a', 3, 1), "
        "($1, 'acc-b', 1, 0)",
        task_id,
    )

    stats = (await client.get(f"{PREFIX}/tasks/{task_id}/stats", headers=headers)).json()

    assert stats["replies"] == {
        "reached": 9,
        "replied": 4,
        "opted_out": 1,
        "blocked": 1,
        "reply_rate": 0.4444,
        "opt_out_rate": 0.1111,
        "block_rate": 0.1111,
    }
    accounts = {a["account_id"]: a["replies"] for a in stats["by_account"]}
    assert accounts["acc-a"] == {
        "reached": 6,
        "replied": 3,
        "opted_out": 1,
        "blocked": 1,
        "reply_rate": 0.5,
        "opt_out_rate": 0.1667,
        "block_rate": 0.1667,
    }
    assert (accounts["acc-b"]["reached"], accounts["acc-b"]["replied"], accounts["acc-b"]["reply_rate"]) == (
        3,
        1,
        0.3333,
    )
