"""What the engine's unit tests of the decision table share: a moment, settings, one invite
task, a sandbox account, its registry and a claim."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Bucket
from invite.engine.claims import Claim
from invite.engine.registry import Registry, RunningTask
from invite.kernel.clock import VirtualClock
from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, RateLimits
from invite.platforms.sandbox import SandboxFactory
from invite.tasks.task_settings import TaskSettings

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SETTINGS = Settings(jwt_secret="x" * 40, max_attempts=3, retry_backoff_seconds=30.0)
TASK = RunningTask(
    id=uuid.UUID(int=7),
    user_id="t",
    platform="telegram",
    task_type="invite_to_group",
    group_id="grp",
    template=None,
    priority=2,
    settings=TaskSettings(),
    has_link=False,
)


def account() -> LeasedAccount:
    data = AccountData(id="a1", user_id="t")
    limits = RateLimits(40, 10, 15.0)
    return LeasedAccount(
        data, SandboxFactory(VirtualClock(), limits=limits).for_account(data), limits, Bucket()
    )


def claim(attempts: int = 1) -> Claim:
    return Claim(uuid.UUID(int=99), "u:someone", {}, attempts, NOW)


def registry(acc: LeasedAccount) -> Registry:
    reg = Registry()
    reg.replace([TASK], [(acc.id, TASK.id)])
    return reg
