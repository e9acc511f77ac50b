"""A person who blocks the account (USER_IS_BLOCKED) has opted out: they go onto the tenant's
suppression list with that reason, and no other task or account contacts them again."""

from __future__ import annotations

from collections import Counter

from invite.platforms.base import OutcomeKind
from invite.platforms.sandbox import ActionKind, SandboxProfile
from tests.integration.engine.harness import TENANT, Scenario


async def test_a_person_who_blocks_the_account_is_never_contacted_again(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(blocked_rate=0.3))
    # two tasks of one tenant to the same twenty people, worked side by side
    first = await engine_scenario.add_task(
        targets=20, task_type="send_messages", template="Hello {first_name}"
    )
    second = await engine_scenario.add_task(targets=20, task_type="send_messages", template="Hi again")
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(first, "completed")
        await engine_scenario.wait_for_status(second, "completed")
    suppressed = {
        r["identifier_key"]: r["reason"]
        for r in await engine_scenario.pool.fetch(
            "SELECT identifier_key, reason FROM invite_suppressions WHERE user_id = $1", TENANT
        )
    }
    targets = await engine_scenario.pool.fetch(
        "SELECT task_id, identifier_key, status, outcome FROM invite_targets WHERE task_id = ANY($1)",
        [first, second],
    )
    messages = [a for a in engine_scenario.record.actions if a.action is ActionKind.MESSAGE]
    blockers = {a.target_key for a in messages if a.outcome is OutcomeKind.BLOCKED}
    assert blockers, "the profile blocks some people"
    per_person = Counter(a.target_key for a in messages)
    assert {key: per_person[key] for key in blockers} == dict.fromkeys(blockers, 1)  # once, never again
    assert set(suppressed) == blockers
    assert all("USER_IS_BLOCKED" in reason for reason in suppressed.values())
    for key in blockers:
        fates = sorted((r["status"], r["outcome"]) for r in targets if r["identifier_key"] == key)
        assert fates == [("skipped", "blocked"), ("skipped", "suppressed")]
    others = {r["identifier_key"] for r in targets} - blockers
    assert {per_person[key] for key in others} == {2}  # everyone else got both messages
