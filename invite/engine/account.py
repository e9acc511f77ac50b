"""An account this replica leases and drives: its client, its bucket, its usage."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from invite.engine.bucket import Bucket, Limits
from invite.engine.registry import RunningTask
from invite.engine.repository import AccountRow, AcquiredAccount
from invite.engine.statuses import AccountStatus
from invite.engine.warmup import warmup_day
from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, InviteStrategy, LeasePurpose, RateLimits, UsageStats


@dataclass
class LeasedAccount:
    data: AccountData
    strategy: InviteStrategy
    rate: RateLimits  # what the platform driver says the account may do
    bucket: Bucket
    daily_limit: int | None = None  # the lowest limit the accounts provider reports
    channel_limit: int | None = None  # its invites a day into one channel (the provider's lease says)
    contacts_limit: int | None = None  # phone numbers it may import a day (the provider's lease says)
    platform: str = "telegram"
    purpose: LeasePurpose = LeasePurpose.INVITE_CAMPAIGN  # what the accounts provider leased it for
    renew_at: datetime | None = None  # when to renew the provider's lease (None: it never runs out)
    status: AccountStatus = AccountStatus.ACTIVE  # as last written to invite_accounts
    warmup_since: datetime | None = None  # the start of its clean history (None: not held back)
    turn: int = 0  # round-robin position among tasks of equal priority
    rights: set[uuid.UUID] = field(default_factory=set)  # invite tasks whose right was checked
    usage: UsageStats = field(default_factory=UsageStats)
    # invites it made so far into the channel of each running invite task (renewed each heartbeat)
    channel_invites: dict[uuid.UUID, int] = field(default_factory=dict)
    driving: bool = True  # False: finish the action in hand and stop
    held: bool = True  # False: another replica took the lease over; do not release it
    blocked: bool = False
    runner: asyncio.Task[None] | None = None
    _limits: dict[uuid.UUID, tuple[RunningTask, int | None, Limits | None]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def user_id(self) -> str:
        return self.data.user_id

    def load(self, row: AccountRow) -> None:
        """Take the quota state from the account's row in invite_accounts."""
        self.bucket = Bucket(
            window_start=row.daily_window_start,
            count=row.daily_count,
            last_action_at=row.last_action_at,
            cooldown_until=row.cooldown_until,
            multiplier=row.pace_multiplier,
        )
        self.daily_limit = row.daily_limit
        self._limits.clear()
        self.status = AccountStatus(row.status)
        self.platform = row.platform
        if isinstance(row, AcquiredAccount):
            # only with the lease: while it is held, only this replica's outcomes change it
            self.warmup_since = row.warmup_since

    def leased_for(self, task: RunningTask) -> bool:
        """The provider's lease covers the task: an invite task needs an invite campaign's."""
        return not task.is_invite or self.purpose is LeasePurpose.INVITE_CAMPAIGN

    def limits_for(self, task: RunningTask, settings: Settings, now: datetime) -> Limits | None:
        """The task's limits for this account at ``now``, kept until the task, the account's limit
        or its day of warm-up changes.

        None for an invite task while the provider's lease is for a message campaign: the
        platform counts invites only under an invite lease (the heartbeat leases it anew).
        """
        if not self.leased_for(task):
            return None
        day = warmup_day(self.warmup_since, now, settings)
        cached = self._limits.get(task.id)
        if cached is not None and cached[0] is task and cached[1] == day:
            return cached[2]
        limits = self.computed_limits(task, settings, now)
        self._limits[task.id] = (task, day, limits)
        return limits

    def computed_limits(
        self,
        task: RunningTask,
        settings: Settings,
        now: datetime,
        *,
        channel_invites: int | None = None,
        link: bool = False,
    ) -> Limits | None:
        """The task's limits for this account at ``now``, worked out afresh (``limits_for`` keeps
        them): its own invites into the channel so far unless ``channel_invites`` says how many;
        ``link``: a message carrying a one-use invite link's (the link quota)."""
        invites = self.channel_invites.get(task.id, 0) if channel_invites is None else channel_invites
        day = warmup_day(self.warmup_since, now, settings)
        return task.limits(settings, self.rate, self.daily_limit, self.channel_limit, invites, day, link=link)

    def link_cap(self, task: RunningTask, settings: Settings, now: datetime) -> int:
        """The most actions in its 24 h window with which it may still send a message carrying
        a one-use invite link for ``task`` (the link quota, and every other limit that applies)."""
        limits = self.computed_limits(task, settings, now, link=True)
        return 0 if limits is None else limits.cap

    def restart_warmup(self, at: datetime | None) -> None:
        """Its clean history starts again ``at`` (after a spam flag, a death or a freeze)."""
        self.warmup_since = at
        self._limits.clear()
