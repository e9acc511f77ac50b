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

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock, VirtualClock
from invite.kernel.settings import Settings
from invite.platforms.sandbox import MemoryRecord, SandboxAccounts, SandboxProfile
from invite.reports.service import ReportService
from invite.suppressions.service import check_identifiers, suppress
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    make_task,
    running_engine,
    sandbox,
    wait_for_status,
    wait_until,
)

TEMPLATE = "Hello {first_name}"
FINISHED = ("completed", "failed")


async def _suppress(
    pool: asyncpg.Pool, config: Settings, clock: Clock, tenant: str, names: list[str]
) -> None:
    with clock.busy():
        await suppress(
            pool,
            config,
            user_id=tenant,
            checked=check_identifiers(names, config.phone_default_region),
            reason="asked to stop",
            now=clock.now(),
            source="test",
        )


async def _attempts(pool: asyncpg.Pool, clock: Clock, task_id: uuid.UUID) -> dict[str, int]:
    with clock.busy():
        rows = await pool.fetch(
            "SELECT identifier_key, attempts FROM invite_targets WHERE task_id = $1", task_id
        )
    return {r["identifier_key"]: r["attempts"] for r in rows}


async def _states(pool: asyncpg.Pool, clock: Clock, task_id: uuid.UUID) -> dict[str, tuple[str, str | None]]:
    with clock.busy():
        rows = await pool.fetch(
            "SELECT identifier_key, status, outcome FROM invite_targets WHERE task_id = $1", task_id
        )
    return {r["identifier_key"]: (r["status"], r["outcome"]) for r in rows}


def _messages(record: MemoryRecord) -> Counter[str]:
    return Counter(a.target_key for a in record.actions if a.action == "message")


async def test_retry_failed_leaves_people_suppressed_after_they_failed(fresh_database_url: str) -> None:
    clock = VirtualClock()
    config = engine_settings(fresh_database_url, max_attempts=1)
    record = MemoryRecord()
    failing = SandboxProfile(transient_rate=1.0)
    async with engine_pool(config) as pool:
        task_id = await make_task(pool, targets=6, task_type="send_messages", template=TEMPLATE)
        accounts = SandboxAccounts(2)
        factory = sandbox(clock, config, failing, record=record)
        async with running_engine(pool, config, clock, factory, accounts):
            await wait_for_status(pool, clock, task_id, *FINISHED)
        assert {s for s, _ in (await _states(pool, clock, task_id)).values()} == {"failed"}
        assert sum(_messages(record).values()) == 6

        await _suppress(pool, config, clock, "tenant-1", ["user1", "user2", "@USER3"])
        with clock.busy():
            retried = await ReportService(pool, config, clock, Tenant("tenant-1")).retry_failed(task_id)
        assert (retried.requeued, retried.skipped_suppressed) == (3, 3)

        answering = sandbox(clock, config, SandboxProfile.zero(), record=record)
        async with running_engine(pool, config, clock, answering, accounts):
            await wait_for_status(pool, clock, task_id, "completed")
        sent = _messages(record)
        assert {key: sent[key] for key in ("u:user1", "u:user2", "u:user3")} == dict.fromkeys(
            ("u:user1", "u:user2", "u:user3"), 1
        )  # the first, failed, message only
        assert {key: sent[key] for key in ("u:user4", "u:user5", "u:user6")} == dict.fromkeys(
            ("u:user4", "u:user5", "u:user6"), 2
        )
        states = await _states(pool, clock, task_id)
        assert {states[k][0] for k in ("u:user1", "u:user2", "u:user3")} == {"failed"}
        assert {states[k][0] for k in ("u:user4", "u:user5", "u:user6")} == {"succeeded"}


async def test_a_person_in_flight_when_suppressed_is_not_contacted_again(fresh_database_url: str) -> None:
    """The answer to the in-flight message is transient: back to the queue, where the claim stops it."""
    clock = VirtualClock()
    config = engine_settings(fresh_database_url)
    record = MemoryRecord()
    slow_and_failing = SandboxProfile(transient_rate=1.0, latency_seconds=(60.0, 60.0))
    async with engine_pool(config) as pool:
        task_id = await make_task(pool, targets=3, task_type="send_messages", template=TEMPLATE)
        factory = sandbox(clock, config, slow_and_failing, record=record)
        async with running_engine(pool, config, clock, factory, SandboxAccounts(1)):

            async def first_in_flight() -> bool:
                return (await _states(pool, clock, task_id))["u:user1"][0] == "in_flight"

            await wait_until(clock, first_in_flight, step=1.0, limit=600.0)
            await _suppress(pool, config, clock, "tenant-1", ["user1"])
            assert (await _attempts(pool, clock, task_id))["u:user1"] == 1

            async def settled() -> bool:
                return (await _states(pool, clock, task_id))["u:user1"] == ("skipped", "suppressed")

            await wait_until(clock, settled, step=30.0, limit=4 * 3600.0)
            # the others go on being retried meanwhile: the task is not held up
            await wait_until(clock, lambda: _more_than(record, "u:user2", 1), step=30.0, limit=4 * 3600.0)
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
    clock = VirtualClock()
    config = engine_settings(url, max_attempts=3, retry_backoff_seconds=20.0)
    record = MemoryRecord()
    profile = SandboxProfile(transient_rate=0.7, latency_seconds=(10.0, 60.0))
    async with engine_pool(config) as pool:
        tasks = [
            await make_task(pool, targets=6, user_id=tenant, task_type="send_messages", template=TEMPLATE)
            for _ in range(2)
        ]
        factory = sandbox(clock, config, profile, seed, record=record)
        # per person: the claims counted on their targets (both tasks) right after the commit
        bound: dict[str, int] = {}
        async with running_engine(pool, config, clock, factory, SandboxAccounts(4)):
            for step in steps:
                await clock.sleep(step.seconds)
                if step.kind == "suppress":
                    person = step.person or await _in_flight(pool, clock, tasks) or 1
                    key = f"u:user{person}"
                    await _suppress(pool, config, clock, tenant, [f"user{person}"])
                    if key not in bound:
                        bound[key] = sum([(await _attempts(pool, clock, t))[key] for t in tasks])
                elif step.kind == "retry":
                    service = ReportService(pool, config, clock, Tenant(tenant))
                    with clock.busy():
                        for task_id in tasks:
                            await service.retry_failed(task_id)
            for task_id in tasks:
                await wait_for_status(pool, clock, task_id, *FINISHED, step=60.0)
            states = [await _states(pool, clock, t) for t in tasks]
        sent = _messages(record)
        for key, claims in bound.items():
            assert sent[key] <= claims, (
                f"{key}: {sent[key]} messages, {claims} claimed before the suppression"
            )
            assert {state[key][0] for state in states} <= {"skipped", "succeeded", "failed"}
        # the others are all reached: the barred ones never block the queue
        assert all(v[0] != "pending" for state in states for v in state.values())


async def _in_flight(pool: asyncpg.Pool, clock: Clock, tasks: list[uuid.UUID]) -> int | None:
    """The number of a person being contacted right now, if any."""
    with clock.busy():
        key = await pool.fetchval(
            "SELECT identifier_key FROM invite_targets WHERE task_id = ANY($1) AND status = 'in_flight' LIMIT 1",
            tasks,
        )
    return None if key is None else int(key.removeprefix("u:user"))


pytestmark = pytest.mark.slow
