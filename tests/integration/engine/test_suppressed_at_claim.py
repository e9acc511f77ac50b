"""A suppression is enforced by the claim itself: nobody suppressed is contacted again, whatever
path put them back in the queue (retry-failed, a transient answer, a recovery).

What "again" means is checked against the sandbox's record of what it received: every action on
a person stems from a claim, and the claims of a person are counted on their target
(``attempts``). Read right after the suppression commits, that count is final — a claim made
later would have to pass the suppression — so no person may ever have more actions in the
record than the attempts counted then. A claim made before the commit may still go out (it was
in flight: the suppression API says so), but it cannot come back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invite.kernel.auth import Tenant
from invite.platforms.sandbox import MemoryRecord, SandboxAccounts, SandboxProfile
from invite.reports.schemas import RetryFailedResponse
from invite.reports.service import ReportService
from invite.suppressions.service import check_identifiers, suppress
from tests.integration.engine.harness import Scenario, open_scenario

TEMPLATE = "Hello {first_name}"
FINISHED = ("completed", "failed")


async def _suppress(scenario: Scenario, tenant: str, names: list[str]) -> None:
    config, clock = scenario.settings, scenario.clock
    with clock.busy():
        await suppress(
            scenario.pool,
            config,
            user_id=tenant,
            checked=check_identifiers(names, config.phone_default_region),
            reason="asked to stop",
            now=clock.now(),
            source="test",
        )


async def _retry_failed(scenario: Scenario, tenant: str, *tasks: uuid.UUID) -> list[RetryFailedResponse]:
    """What POST /tasks/{id}/retry-failed does, for each of these tasks."""
    service = ReportService(scenario.pool, scenario.settings, scenario.clock, Tenant(tenant))
    with scenario.clock.busy():
        return [await service.retry_failed(task_id) for task_id in tasks]


async def _attempts(scenario: Scenario, task_id: uuid.UUID) -> dict[str, int]:
    with scenario.clock.busy():
        rows = await scenario.pool.fetch(
            "SELECT identifier_key, attempts FROM invite_targets WHERE task_id = $1", task_id
        )
    return {r["identifier_key"]: r["attempts"] for r in rows}


async def _states(scenario: Scenario, task_id: uuid.UUID) -> dict[str, tuple[str, str | None]]:
    with scenario.clock.busy():
        rows = await scenario.pool.fetch(
            "SELECT identifier_key, status, outcome FROM invite_targets WHERE task_id = $1", task_id
        )
    return {r["identifier_key"]: (r["status"], r["outcome"]) for r in rows}


def _messages(record: MemoryRecord) -> Counter[str]:
    return Counter(a.target_key for a in record.actions if a.action == "message")


async def test_retry_failed_leaves_people_suppressed_after_they_failed(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(transient_rate=1.0), max_attempts=1)
    record = engine_scenario.record
    task_id = await engine_scenario.add_task(targets=6, task_type="send_messages", template=TEMPLATE)
    accounts = SandboxAccounts(2)
    async with engine_scenario.running(accounts):
        await engine_scenario.wait_for_status(task_id, *FINISHED)
    assert {s for s, _ in (await _states(engine_scenario, task_id)).values()} == {"failed"}
    assert sum(_messages(record).values()) == 6

    await _suppress(engine_scenario, "tenant-1", ["user1", "user2", "@USER3"])
    [retried] = await _retry_failed(engine_scenario, "tenant-1", task_id)
    assert (retried.requeued, retried.skipped_suppressed) == (3, 3)

    # the same settings; a simulated Telegram that answers, on the same record
    engine_scenario.configure(SandboxProfile.zero(), max_attempts=1)
    async with engine_scenario.running(accounts):
        await engine_scenario.wait_for_status(task_id, "completed")
    sent = _messages(record)
    assert {key: sent[key] for key in ("u:user1", "u:user2", "u:user3")} == dict.fromkeys(
        ("u:user1", "u:user2", "u:user3"), 1
    )  # the first, failed, message only
    assert {key: sent[key] for key in ("u:user4", "u:user5", "u:user6")} == dict.fromkeys(
        ("u:user4", "u:user5", "u:user6"), 2
    )
    states = await _states(engine_scenario, task_id)
    assert {states[k][0] for k in ("u:user1", "u:user2", "u:user3")} == {"failed"}
    assert {states[k][0] for k in ("u:user4", "u:user5", "u:user6")} == {"succeeded"}


async def test_a_person_in_flight_when_suppressed_is_not_contacted_again(engine_scenario: Scenario) -> None:
    """The answer to the in-flight message is transient: back to the queue, where the claim stops it."""
    engine_scenario.configure(SandboxProfile(transient_rate=1.0, latency_seconds=(60.0, 60.0)))
    record = engine_scenario.record
    task_id = await engine_scenario.add_task(targets=3, task_type="send_messages", template=TEMPLATE)
    async with engine_scenario.running(1):

        async def first_in_flight() -> bool:
            return (await _states(engine_scenario, task_id))["u:user1"][0] == "in_flight"

        await engine_scenario.wait_until(first_in_flight, step=1.0, limit=600.0)
        await _suppress(engine_scenario, "tenant-1", ["user1"])
        assert (await _attempts(engine_scenario, task_id))["u:user1"] == 1

        async def settled() -> bool:
            return (await _states(engine_scenario, task_id))["u:user1"] == ("skipped", "suppressed")

        await engine_scenario.wait_until(settled, step=30.0, limit=4 * 3600.0)
        # the others go on being retried meanwhile: the task is not held up
        await engine_scenario.wait_until(
            lambda: _more_than(record, "u:user2", 1), step=30.0, limit=4 * 3600.0
        )
    assert _messages(record)["u:user1"] == 1


async def _more_than(record: MemoryRecord, key: str, n: int) -> bool:
    return _messages(record)[key] > n


# --- property: suppressions interleaved with claims, transient answers and retry-failed --------


@dataclass(frozen=True)
class Step:
    kind: str  # "suppress" (a person, 0: one in flight now), "retry" (retry-failed) or "wait"
    seconds: float
    person: int = 0


STEPS = st.lists(
    st.one_of(
        st.builds(Step, st.just("suppress"), st.floats(0, 60), st.just(0) | st.integers(1, 6)),
        st.builds(Step, st.just("retry"), st.floats(0, 300)),
        st.builds(Step, st.just("wait"), st.floats(0, 300)),
    ),
    min_size=2,
    max_size=8,
)


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS, seed=st.integers(1, 1000))
def test_nobody_is_contacted_after_their_suppression_committed(
    fresh_database_url: str, steps: list[Step], seed: int
) -> None:
    asyncio.run(_interleave(fresh_database_url, steps, seed))


async def _interleave(url: str, steps: list[Step], seed: int) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    async with open_scenario(url) as scenario:
        scenario.configure(
            SandboxProfile(transient_rate=0.7, latency_seconds=(10.0, 60.0)),
            seed=seed,
            max_attempts=3,
            retry_backoff_seconds=20.0,
        )
        tasks = [
            await scenario.add_task(targets=6, user_id=tenant, task_type="send_messages", template=TEMPLATE)
            for _ in range(2)
        ]
        # per person: the claims counted on their targets (both tasks) right after the commit
        bound: dict[str, int] = {}
        async with scenario.running(4):
            for step in steps:
                await scenario.clock.sleep(step.seconds)
                if step.kind == "suppress":
                    person = step.person or await _in_flight(scenario, tasks) or 1
                    key = f"u:user{person}"
                    await _suppress(scenario, tenant, [f"user{person}"])
                    if key not in bound:
                        bound[key] = sum([(await _attempts(scenario, t))[key] for t in tasks])
                elif step.kind == "retry":
                    await _retry_failed(scenario, tenant, *tasks)
            for task_id in tasks:
                await scenario.wait_for_status(task_id, *FINISHED, step=60.0)
            states = [await _states(scenario, t) for t in tasks]
        sent = _messages(scenario.record)
        for key, claims in bound.items():
            assert sent[key] <= claims, (
                f"{key}: {sent[key]} messages, {claims} claimed before the suppression"
            )
            assert {state[key][0] for state in states} <= {"skipped", "succeeded", "failed"}
        # the others are all reached: the barred ones never block the queue
        assert all(v[0] != "pending" for state in states for v in state.values())


async def _in_flight(scenario: Scenario, tasks: list[uuid.UUID]) -> int | None:
    """The number of a person being contacted right now, if any."""
    with scenario.clock.busy():
        key = await scenario.pool.fetchval(
            "SELECT identifier_key FROM invite_targets WHERE task_id = ANY($1) AND status = 'in_flight' LIMIT 1",
            tasks,
        )
    return None if key is None else int(key.removeprefix("u:user"))


pytestmark = pytest.mark.slow
