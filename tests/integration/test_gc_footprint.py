"""What grows with a campaign stays out of the garbage collector's full passes, which stop the
event loop the API shares with the engine for as long as they walk: the sandbox's record and
its per-person memory are not tracked, and the app freezes what start-up built while it runs
(and collects its young objects less often)."""

from __future__ import annotations

import gc

from litestar.testing import AsyncTestClient

from invite.app import YOUNG_GENERATION, create_app
from invite.kernel.clock import VirtualClock
from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, OutcomeKind, RateLimits, Target, TargetKind
from invite.platforms.sandbox import MemoryRecord, SandboxFactory


async def test_the_sandboxs_memory_of_each_action_is_not_tracked() -> None:
    record = MemoryRecord()
    sandbox = SandboxFactory(VirtualClock(), limits=RateLimits(40, 10, 15.0), record=record)
    strategy = sandbox.for_account(AccountData(id="acc-1", user_id="t"))
    for n in range(3):
        outcome = await strategy.invite_to_group(Target(TargetKind.USERNAME, f"person{n}"), "@group")
        assert outcome.kind is OutcomeKind.SUCCESS
    gc.collect()  # tuples of untracked values are untracked by the first collection they meet
    assert len(record.actions) == 3
    assert not any(gc.is_tracked(action) for action in record.actions)
    assert not any(gc.is_tracked(key) for key in sandbox._world.attempts)


async def test_the_app_freezes_what_start_up_built_while_it_runs(settings: Settings) -> None:
    before = gc.get_threshold()
    async with AsyncTestClient(app=create_app(settings)):
        assert gc.get_freeze_count() > 0
        # short-lived objects get the time to die before the young generation is collected
        assert gc.get_threshold() == (YOUNG_GENERATION, *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
