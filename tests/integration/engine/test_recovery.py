"""Delivery semantics after a worker died mid-action: its leases expire, a message becomes
`uncertain` and is never re-sent, an invite (idempotent) is retried."""

from __future__ import annotations

from datetime import timedelta

from invite.engine.clock import VirtualClock
from invite.platforms.sandbox import ActionKind, SandboxAccounts, sends_per_target
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    make_task,
    running_engine,
    sandbox,
    wait_for_status,
)

ORPHAN = """UPDATE invite_targets SET status = 'in_flight', lease_owner = 'dead-replica', attempts = 1,
                  lease_expires_at = $2, account_id = 'sandbox-tenant-1-1'
           WHERE task_id = $1 AND identifier_key = ANY($3::text[])"""


async def test_expired_leases_make_messages_uncertain_and_retry_invites(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        messages = await make_task(pool, targets=5, task_type="send_messages", template="Hi {first_name}")
        invites = await make_task(pool, targets=5, prefix="inv", group="group-2")
        expired = clock.now() - timedelta(seconds=1)
        await pool.execute(ORPHAN, messages, expired, ["u:user1", "u:user2"])
        await pool.execute(ORPHAN, invites, expired, ["u:inv1"])
        factory = sandbox(clock, settings)
        async with running_engine(pool, settings, clock, factory, SandboxAccounts(2)):
            await wait_for_status(pool, clock, messages, "completed")
            await wait_for_status(pool, clock, invites, "completed")
        rows = await pool.fetch(
            "SELECT identifier_key, status, outcome, error_message, attempts FROM invite_targets"
        )
    targets = {r["identifier_key"]: r for r in rows}
    for key in ("u:user1", "u:user2"):
        assert (targets[key]["status"], targets[key]["outcome"]) == ("uncertain", "lease_expired")
        assert "not re-sent" in targets[key]["error_message"]
    assert {targets[f"u:user{n}"]["status"] for n in (3, 4, 5)} == {"succeeded"}
    assert (targets["u:inv1"]["status"], targets["u:inv1"]["attempts"]) == ("succeeded", 2)
    sent = sends_per_target(factory.record.read_since(0)[0])
    messaged = {key for (action, _, key) in sent if action is ActionKind.MESSAGE}
    assert messaged == {"u:user3", "u:user4", "u:user5"}  # the uncertain two were never re-sent
