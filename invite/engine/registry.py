"""What this replica knows of the work: running tasks, which leased account may serve which,
and which tasks have nothing to claim right now. Account coroutines read it to choose their
next task; ``changed`` wakes them when the picture changes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime

import msgspec

from invite.engine.bucket import Limits
from invite.engine.repository import TaskRow
from invite.engine.warmup import warmup_cap
from invite.kernel.settings import Settings
from invite.platforms.base import RateLimits
from invite.tasks.task_settings import TaskSettings, offers_link
from invite.tasks.templates import has_link


class RunningTask(msgspec.Struct, frozen=True):
    id: uuid.UUID
    user_id: str
    platform: str
    task_type: str
    group_id: str | None
    template: str | None
    priority: int  # 1 HIGH, 2 NORMAL, 3 LOW
    settings: TaskSettings
    has_link: bool

    @property
    def is_invite(self) -> bool:
        return self.task_type == "invite_to_group"

    @property
    def offers_link(self) -> bool:
        """An invite task that offers a one-use invite link to whom privacy keeps out (links.py)."""
        return self.is_invite and offers_link(self.settings)

    @property
    def action(self) -> str:
        return "invite_to_group" if self.is_invite else "send_message"

    def recontact_days(self, default: int) -> int:
        """The cross-task recontact cap in force (0: none): the task's own, else the service's."""
        return self.settings.recontact_days if self.settings.recontact_days is not None else default

    @classmethod
    def from_row(cls, row: TaskRow) -> RunningTask:
        template = row.message_template
        return cls(
            id=row.id,
            user_id=row.user_id,
            platform=row.platform,
            task_type=row.task_type,
            group_id=row.target_group_id,
            template=template,
            priority=row.priority,
            settings=msgspec.convert(row.settings or {}, TaskSettings),
            has_link=row.task_type == "send_messages" and has_link(template or ""),
        )

    @classmethod
    def load(cls, rows: Iterable[TaskRow]) -> tuple[list[RunningTask], list[tuple[uuid.UUID, str]]]:
        """The running tasks, and those whose stored row cannot drive the engine, with why.

        One task's row must never stop the others: a setting stored before its bound existed
        (or any row the engine cannot read) leaves that task out, and the caller pauses it.
        """
        tasks: list[RunningTask] = []
        broken: list[tuple[uuid.UUID, str]] = []
        for row in rows:
            try:
                tasks.append(cls.from_row(row))
            except (msgspec.ValidationError, ValueError, TypeError) as exc:
                broken.append((row.id, f"the task's settings cannot be used: {exc}"))
        return tasks, broken

    def limits(
        self,
        settings: Settings,
        platform: RateLimits,
        account_limit: int | None,
        channel_limit: int | None = None,
        channel_invites: int = 0,
        warmup_day: int | None = None,
        *,
        link: bool = False,
    ) -> Limits | None:
        """The quota and pauses this task allows an account: the lowest of every limit that applies
        (None: a quota of zero, the account may not act for this task at all).

        A link anywhere in the template puts the task on the link quota (a link that only a
        person's data brings in is not foreseen: the quota is chosen before the claim). Where
        the accounts provider limits invites per channel (``channel_limit`` a day), an invite
        task is held to that and to what is left of the lifetime cap per channel after the
        ``channel_invites`` the account made into the group so far. Both cap the account's
        whole 24 h count (the one the claim statement checks on every replica), which counts
        every invite into the channel and more: never passed, however the invites are split.
        An account on ``warmup_day`` of its warm-up (warmup.py; None: warmed up) is held to
        that day's share of the lowest of the others. ``link``: the limits of a message carrying
        a one-use invite link (the link quota), whatever the task's own template holds.
        """
        if self.has_link or link:
            caps = [settings.daily_quota_with_link, platform.daily_quota_with_link]
        else:
            caps = [settings.daily_quota, platform.daily_quota]
        caps += [c for c in (self.settings.daily_limit_per_account, account_limit) if c is not None]
        if self.is_invite and channel_limit is not None:
            caps += [channel_limit, settings.channel_lifetime_invite_limit - channel_invites]
        pause = max(
            settings.min_pause_seconds, platform.min_pause_seconds, self.settings.min_pause_seconds or 0.0
        )
        cap = warmup_cap(warmup_day, min(caps), settings)
        return Limits.of(cap, pause, self.settings.send_window) if cap > 0 else None


class Registry:
    def __init__(self) -> None:
        self.tasks: dict[uuid.UUID, RunningTask] = {}
        self._servable: dict[str, set[uuid.UUID]] = {}
        self._idle_until: dict[uuid.UUID, datetime] = {}
        self._changed = asyncio.Event()
        self.driven = 0  # accounts this replica drives right now (the lease keeper keeps it)

    @property
    def changed(self) -> asyncio.Event:
        """Set on the next change; take it before deciding, wait on it after."""
        return self._changed

    def bump(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def replace(self, tasks: Iterable[RunningTask], servable: Iterable[tuple[str, uuid.UUID]]) -> None:
        self.tasks = {task.id: task for task in tasks}
        self._servable = {}
        for account_id, task_id in servable:
            self._servable.setdefault(account_id, set()).add(task_id)
        self._idle_until = {k: v for k, v in self._idle_until.items() if k in self.tasks}
        self.bump()

    def tasks_for(self, account_id: str) -> list[RunningTask]:
        ids = self._servable.get(account_id, ())
        return [self.tasks[task_id] for task_id in ids if task_id in self.tasks]

    def serves_anything(self, account_id: str) -> bool:
        return bool(self.tasks_for(account_id))

    def forbid(self, account_id: str, task_id: uuid.UUID) -> None:
        """The account may no longer serve the task (it left it, or was blocked)."""
        self._servable.get(account_id, set()).discard(task_id)
        self.bump()

    def drop_task(self, task_id: uuid.UUID) -> None:
        if self.tasks.pop(task_id, None) is not None:
            self.bump()

    def idle_until(self, task_id: uuid.UUID) -> datetime | None:
        return self._idle_until.get(task_id)

    def mark_idle(self, task_id: uuid.UUID, until: datetime) -> None:
        """Nothing to claim in the task before ``until`` (a claim came back short)."""
        self._idle_until[task_id] = until

    def note_work(self, task_id: uuid.UUID, at: datetime) -> None:
        """A target of the task becomes claimable at ``at`` (it was put back in the queue)."""
        until = self._idle_until.get(task_id)
        if until is not None and at < until:
            self._idle_until[task_id] = at
            self.bump()

    def wake_all(self) -> None:
        """Forget every idle mark (new work may have arrived from elsewhere) and wake everyone."""
        self._idle_until.clear()
        self.bump()
