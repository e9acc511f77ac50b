"""When a task will be done within the platform's limits: ``plan``.

``invite.reports.service`` asks it for ``GET /tasks/{id}/status`` (the ETA and what limits the
pace; the rate there is the one measured over the last hour) and for ``GET .../forecast``
(days, finish date, people a day; an import's dry run adds the people it would bring).

``plan`` runs each account's own token bucket (``engine/bucket.py``: its remaining room in the
24 h window, its pause times the AIMD multiplier, the pacing that spreads the quota over the
task's daily open time, the send window in the task's time zone, a cooldown in force) forward
on a copy, one reservation at a time, always giving the next person to the account free first
— as the claims do — so the finish date follows the same rules the engine keeps, not a straight
line. The multiplier eases back by the engine's step on every action, as it does on success.
FloodWaits come as the task's ``History`` says: at the rate and of the length the task has met
them, and before it has met many, those the tenant's other tasks of its kind met (a first
campaign without them runs about a tenth longer than its start forecast, at 3 % of 2 h).
Past ``max_events`` reservations the rest goes at the accounts' steady daily rate (the
bucket's own ``Limits.per_day``), each from the moment it is next free (a campaign of a million
people need not be replayed one by one on every status poll). The pacing itself is the
bucket's alone (``Limits.gap``): nothing here restates it. An account still warming up
(``warmup.py``) is held to the cap of each day of its warm-up as the replay reaches it (the
engine's own ``warmup_cap``, passed in as ``warmup``), and the steady rest goes at the cap of the
day it starts from. In an invite task offering one-use invite links (links.py), the people
waiting for their link's message and the share of those an invite will reach that privacy keeps
out (``History.link_share``, from the task's invites and, before it has many, the tenant's) cost
one more action each, sent as the claim sends them: first in the account's window while it is
under the link quota, never past it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import msgspec

from invite.engine.bucket import Bucket, Limits
from invite.engine.windows import DAY
from invite.platforms.base import RateLimits

# The brief's published Telegram figures, which /status and /forecast hold a Telegram task to
# beside the configured ones (RunningTask.limits takes the lowest).
TELEGRAM_DEFAULTS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
# How many of a task's own actions the FloodWaits of the tenant's other tasks weigh, at most:
# a task's own rate is what it meets, once it has acted a few hundred times.
PRIOR_ACTIONS = 200


@dataclass(frozen=True)
class Seat:
    """One account as the forecast sees it: its quota state now and what the task allows it
    (``limits`` None: it may not act for the task — blocked, excluded, a quota of zero)."""

    account_id: str
    bucket: Bucket
    limits: Limits | None  # at the full quota
    warmup_since: datetime | None = None  # its clean history's start (None: not held back)
    # a message carrying a one-use invite link (a task offering them): at the link quota
    link_limits: Limits | None = None


# the daily cap at a moment of an account whose clean history began then (or None), at this full cap
Warmup = Callable[[datetime | None, datetime, int], int]


class _Caps:
    """Each account's limits at a moment: the full ones lowered to the day's warm-up cap."""

    def __init__(self, warmup: Warmup | None) -> None:
        self._warmup = warmup
        self._lowered: dict[tuple[Limits, int], Limits] = {}

    def at(self, limits: Limits, since: datetime | None, at: datetime) -> Limits:
        if self._warmup is None or since is None:
            return limits
        cap = self._warmup(since, at, limits.cap)
        if cap >= limits.cap:
            return limits
        key = (limits, cap)
        if key not in self._lowered:
            self._lowered[key] = Limits.of(max(cap, 1), limits.min_pause, limits.send_window)
        return self._lowered[key]


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    remaining: int  # people still to reach
    accounts: int  # accounts that can act for the task
    people_per_day: int  # at the accounts' steady pace (quota, pause, pacing, window)
    finish_at: datetime | None  # None: no account can act
    days: float | None  # from now to finish_at
    limited_by: list[str]  # what holds the pace: accounts, quota, pause, send_window, cooldown


@dataclass(frozen=True)
class Seen:
    """The FloodWaits some actions met: how many actions, how many FloodWaits, their mean wait."""

    actions: int = 0
    floods: int = 0
    flood_seconds: float = 0.0


@dataclass(frozen=True)
class Refusals:
    """Invites that reached a person's answer, and how many of those their privacy refused."""

    invites: int = 0
    refused: int = 0


@dataclass(frozen=True)
class History:
    """What reaching people has cost the task so far, or is expected to (``History.of``)."""

    actions_per_person: float = 1.0  # actions other than FloodWaits per person reached (transient retries)
    flood_rate: float = 0.0  # FloodWaits per action
    flood_seconds: float = 0.0  # the cooldown a FloodWait imposes, on average
    # people an invite could not add for privacy per invite answered: each is offered a one-use
    # link (a task offering them), one more action, at the link quota
    link_share: float = 0.0

    @classmethod
    def of(
        cls,
        own: Seen,
        processed: int,
        tenant: Seen | None = None,
        *,
        refusals: Refusals | None = None,
        tenant_refusals: Refusals | None = None,
    ) -> History:
        """The task's own FloodWaits (``own``, over ``processed`` people) with the tenant's other
        tasks on the same platform filling in: before its first action a task meets FloodWaits
        at the rate and of the length the tenant's accounts have been meeting them, and its own
        take over as it acts (the tenant's count as PRIOR_ACTIONS of its actions at most). The
        share of people privacy keeps out comes the same way, from the invites' ``refusals``."""
        other = tenant or Seen()
        weight = min(other.actions, PRIOR_ACTIONS) / other.actions if other.actions else 0.0
        floods = own.floods + other.floods * weight
        actions = own.actions + other.actions * weight
        waited = own.floods * own.flood_seconds + other.floods * weight * other.flood_seconds
        mine, theirs = refusals or Refusals(), tenant_refusals or Refusals()
        prior = min(theirs.invites, PRIOR_ACTIONS) / theirs.invites if theirs.invites else 0.0
        invites = mine.invites + theirs.invites * prior
        return cls(
            actions_per_person=(own.actions - own.floods) / processed if processed else 1.0,
            flood_rate=floods / actions if actions else 0.0,
            flood_seconds=waited / floods if floods else 0.0,
            link_share=(mine.refused + theirs.refused * prior) / invites if invites else 0.0,
        )


def plan(
    now: datetime,
    remaining: int,
    seats: Sequence[Seat],
    *,
    relax_step: float,
    history: History | None = None,
    max_events: int = 5_000,
    warmup: Warmup | None = None,
    links_due: int = 0,
) -> Plan:
    """When ``remaining`` people will have been reached by ``seats``.

    With the task's ``history``, the replay meets what the task has met so far: each account
    takes a FloodWait every ``1 / flood_rate`` actions (the action spent, the account cooling
    for ``flood_seconds``), and a person costs ``actions_per_person`` other actions. With
    ``warmup``, an account's cap on each day is what its warm-up allows it that day.
    Where the seats offer one-use invite links (``link_limits``), ``links_due`` of the
    remaining people wait for their link's message, and a share ``link_share`` of those an
    invite reaches will too; a link's message goes out as the engine sends it: only while the
    account's 24 h count is under its link quota (the claim's rule), the invites meanwhile
    going on. ``people_per_day`` is at today's caps."""
    seen = history or History()
    caps = _Caps(warmup)
    acting = [seat for seat in seats if seat.limits is not None]
    usable = [(seat.bucket, seat.limits) for seat in acting if seat.limits is not None]
    since = [seat.warmup_since for seat in acting]
    linking = [seat.link_limits for seat in acting]
    today = [caps.at(limits, at, now) for (_, limits), at in zip(usable, since, strict=True)]
    per_day = sum(
        _people_per_day(limits, seen, _at(caps, link, at, now))
        for limits, link, at in zip(today, linking, since, strict=True)
    )
    limited_by = _limits(now, seats, list(zip((b for b, _ in usable), today, strict=True)))
    if any(t is not limits for t, (_, limits) in zip(today, usable, strict=True)):
        limited_by.append("warm_up")
    if remaining <= 0:
        return Plan(
            remaining=0,
            accounts=len(usable),
            people_per_day=int(per_day),
            finish_at=now,
            days=0.0,
            limited_by=limited_by,
        )
    if not usable:
        return Plan(
            remaining=remaining,
            accounts=0,
            people_per_day=0,
            finish_at=None,
            days=None,
            limited_by=limited_by,
        )
    share = seen.link_share if any(link is not None for link in linking) else 0.0
    links = float(min(links_due, remaining)) if share or links_due else 0.0
    fresh = remaining - links  # people no invite has reached yet
    queue = [(bucket.next_allowed(now, today[i]), i) for i, (bucket, _) in enumerate(usable)]
    heapq.heapify(queue)
    # each account's share of its next FloodWait, spread over the accounts (stratified), so
    # that the replay meets as many as the rate says even when each account has few left
    debt = [(i + 0.5) / len(usable) for i in range(len(usable))]
    step = 1.0 / max(seen.actions_per_person, 1.0)  # a person reached per other action
    events, last = 0, now
    copied: set[int] = set()  # the seats' buckets are never touched: copies of those replayed
    while (fresh > 1e-9 or links > 1e-9) and events < max_events:
        at, i = heapq.heappop(queue)
        bucket, limits = usable[i]
        if i not in copied:
            copied.add(i)
            bucket = replace(bucket)
            usable[i] = (bucket, limits)
        limits = caps.at(limits, since[i], at)
        link = _at(caps, linking[i], since[i], at)
        # a link due goes first where the account has link room (the claim's head), once one
        # whole person is waiting for it (the share of those an invite reaches adds up)
        due = links >= 1.0 - 1e-9 or (fresh <= 1e-9 and links > 1e-9)
        sends_link = due and link is not None and bucket.used(at) < link.cap
        if not sends_link and fresh <= 1e-9:
            if link is None:  # only links are left, and this account sends none: it is done
                continue
            heapq.heappush(queue, (bucket.next_allowed(at, link), i))  # its window past the link quota
            continue
        bucket.reserve(at)
        debt[i] += seen.flood_rate
        if debt[i] >= 1.0:
            debt[i] -= 1.0
            bucket.cool_down(at + timedelta(seconds=seen.flood_seconds))
        elif sends_link:
            bucket.relax(relax_step)
            links -= min(step, links)
        else:
            bucket.relax(relax_step)
            fresh -= step
            links += step * share
        events, last = events + 1, at
        heapq.heappush(queue, (bucket.next_allowed(at, limits if fresh > 1e-9 or link is None else link), i))
    left = fresh + links
    if left > 1e-9 and queue:
        # the rest at each account's steady pace, from the moment it is next free (a cooldown
        # or a spent quota holds one back; the others carry the load meanwhile)
        pace = {
            i: _people_per_day(caps.at(usable[i][1], since[i], at), seen, _at(caps, linking[i], since[i], at))
            for at, i in queue
        }
        starts = [(at, pace[i] / DAY.total_seconds()) for at, i in queue if pace[i] > 0]
        last = _steady_finish(starts, left)
    finish = last
    return Plan(
        remaining=remaining,
        accounts=len(usable),
        people_per_day=int(per_day),
        finish_at=finish,
        days=(finish - now) / DAY,
        limited_by=limited_by,
    )


def _steady_finish(paces: list[tuple[datetime, float]], left: float) -> datetime:
    """When ``left`` people are reached by accounts each going on from its start at its pace
    (people a second): the accounts join one by one, the work left shrinking at their sum."""
    paces.sort()
    at, rate = paces[0][0], 0.0
    for start, pace in paces:
        if rate > 0 and rate * (start - at).total_seconds() >= left:
            break
        left -= rate * (start - at).total_seconds()
        at, rate = start, rate + pace
    return at + timedelta(seconds=left / rate)


def _at(caps: _Caps, limits: Limits | None, since: datetime | None, at: datetime) -> Limits | None:
    return None if limits is None else caps.at(limits, since, at)


def _people_per_day(limits: Limits, seen: History, link: Limits | None = None) -> float:
    """People a day one account reaches at its steady pace, FloodWaits and their cooldowns
    taken out of its day as the history says they come; where it sends one-use links, each
    person a link is offered to costs one more action, and no more of those go out a day than
    its link quota."""
    actions = limits.per_day()
    lost = actions * seen.flood_rate * seen.flood_seconds / DAY.total_seconds()  # days spent cooling
    people = actions * (1.0 - seen.flood_rate) / max(seen.actions_per_person, 1.0) / (1.0 + lost)
    if link is None or not seen.link_share:
        return people
    return min(people / (1.0 + seen.link_share), link.per_day() / seen.link_share)


def _limits(now: datetime, seats: Sequence[Seat], usable: Sequence[tuple[Bucket, Limits]]) -> list[str]:
    """What holds the pace: no account at all; the quota (paced over the open hours, the gap
    is the pacing, not the pause); the pause stretched past the pacing by its multiplier; a
    send window; a cooldown in force; accounts that may not act for the task."""
    if not usable:
        return ["accounts"]
    found = {
        "quota": any(not limits.pause_holds() for _, limits in usable),
        "pause": any(limits.pause_holds(bucket.multiplier) for bucket, limits in usable),
        "send_window": any(limits.send_window is not None for _, limits in usable),
        "cooldown": any(bucket.cooling(now) for bucket, _ in usable),
        "accounts": len(usable) < len(seats),
    }
    return [name for name, holds in found.items() if holds]
