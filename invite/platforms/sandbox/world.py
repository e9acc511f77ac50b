"""What the simulated Telegram remembers, rebuilt from the record; when people join through links.

Invite links behave as Telegram's one-use links: ``create_invite_link`` records a link
(``https://t.me/+`` and 16 characters drawn from seed, account and how many links it asked for
before) with its expiry. A message sent to a person with a link's URL in its text may bring
them in: a share ``link_join_rate`` of people (a property of the person) open the first links
they get, ``link_join_after_seconds`` after the message. A join counts once its time has come,
through a link neither revoked nor expired by then and not used by anyone before (usage limit
1), into a group the person is not in yet; it makes them a member. Joins are never recorded:
they follow from the record (links, messages, revokes, invites), so every replica sees the same.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec

from invite.platforms.base import OutcomeKind
from invite.platforms.sandbox.hashing import _unit
from invite.platforms.sandbox.profile import SandboxProfile
from invite.platforms.sandbox.record import _PERSON_ACTIONS, ActionKind, SandboxAction, SandboxRecord

_ANSWERED = frozenset(
    {
        OutcomeKind.SUCCESS,
        OutcomeKind.ALREADY_MEMBER,
        OutcomeKind.PRIVACY_RESTRICTED,
        OutcomeKind.NOT_FOUND,
        OutcomeKind.BLOCKED,
    }
)


class _Link(msgspec.Struct):
    account_id: str
    group_id: str
    expires_at: datetime
    revoked_at: datetime | None = None


class _Join(NamedTuple):
    at: datetime
    key: str  # the person
    url: str


# When a person sent a link at a time joins through it (None: they never open it): the profile's
JoinTime = Callable[[str, str, datetime], datetime | None]


class _World:
    """What the simulated Telegram remembers, rebuilt from the record (its only input); who
    would open a link, and when, is the profile's (``join_time``)."""

    def __init__(self, record: SandboxRecord, join_time: JoinTime | None = None) -> None:
        self.record = record
        self.join_time = join_time
        self.members: defaultdict[str, set[str]] = defaultdict(set)
        # keyed by plain strings (the kind's value): such tuples leave the collector's sight too
        self.attempts: Counter[tuple[str, str, str]] = Counter()
        self.answered: Counter[str] = Counter()
        self.dead: set[str] = set()
        self.flood_until: dict[str, datetime] = {}
        self.messaged: dict[tuple[str, str], datetime] = {}  # (account, person) → its latest message
        self.messaged_by: defaultdict[str, dict[str, datetime]] = defaultdict(dict)  # the same, by account
        self.random_ids: set[tuple[str, int]] = set()  # (account, random_id) of the messages it sent
        self.links: dict[str, _Link] = {}  # by URL
        self.link_calls: Counter[str] = Counter()  # links each account asked for, whatever the answer
        self._joins: list[_Join] = []  # the joins people would make, by time (``join_time``)
        self._version = 0  # changes whenever what decides the joins does
        self._resolved: tuple[tuple[int, int], list[_Join], set[tuple[str, str]]] | None = None
        self._position = 0

    def catch_up(self) -> None:
        actions, self._position = self.record.read_since(self._position)
        for action in actions:
            self._apply(action)

    def write(self, action: SandboxAction) -> None:
        self.record.append(action)
        self.catch_up()

    def joins(self, now: datetime) -> tuple[list[_Join], set[tuple[str, str]]]:
        """The joins made by ``now``, oldest first, and who they made members: (group, person)."""
        due = bisect.bisect_right(self._joins, now, key=lambda j: j.at)
        if self._resolved is None or self._resolved[0] != (self._version, due):
            used: set[str] = set()
            joined: set[tuple[str, str]] = set()
            made: list[_Join] = []
            for join in self._joins[:due]:  # in time order: the first to open a link uses it up
                link = self.links[join.url]
                person = (link.group_id, join.key)
                if join.url in used or person in joined or join.key in self.members.get(link.group_id, ()):
                    continue
                if join.at >= link.expires_at or (link.revoked_at is not None and link.revoked_at <= join.at):
                    continue
                used.add(join.url)
                joined.add(person)
                made.append(join)
            self._resolved = ((self._version, due), made, joined)
        return self._resolved[1], self._resolved[2]

    def _apply(self, a: SandboxAction) -> None:
        if a.action in _PERSON_ACTIONS:
            self.attempts[(a.action.value, a.destination, a.target_key)] += 1
            if a.outcome in _ANSWERED:
                self.answered[a.account_id] += 1
        if a.action is ActionKind.LINK:
            self.link_calls[a.account_id] += 1
        if a.outcome is OutcomeKind.SUCCESS and a.action is ActionKind.INVITE and a.group_id is not None:
            self.members[a.group_id].add(a.target_key)
            self._version += 1
        elif a.outcome is OutcomeKind.SUCCESS and a.action is ActionKind.MESSAGE:
            key = (a.account_id, a.target_key)
            self.messaged[key] = self.messaged_by[a.account_id][a.target_key] = max(
                a.at, self.messaged.get(key, a.at)
            )
            if a.random_id is not None:
                self.random_ids.add((a.account_id, a.random_id))
            if a.link_url in self.links:
                self._link_sent(a)
        elif a.outcome is OutcomeKind.SUCCESS and a.action is ActionKind.LINK:
            if a.link_url is not None and a.group_id is not None and a.expires_at is not None:
                self.links[a.link_url] = _Link(a.account_id, a.group_id, a.expires_at)
        elif a.outcome is OutcomeKind.SUCCESS and a.action is ActionKind.REVOKE_LINK:
            link = self.links.get(a.link_url or "")
            if link is not None and link.revoked_at is None:
                link.revoked_at = a.at
                self._version += 1
        elif a.outcome is OutcomeKind.ACCOUNT_DEAD:
            self.dead.add(a.account_id)
        elif a.outcome is OutcomeKind.FLOOD_WAIT:
            until = a.at + timedelta(seconds=a.seconds)
            self.flood_until[a.account_id] = max(until, self.flood_until.get(a.account_id, until))

    def _link_sent(self, a: SandboxAction) -> None:
        url = a.link_url
        if self.join_time is None or url is None:
            return
        at = self.join_time(a.target_key, url, a.at)
        if at is not None:
            bisect.insort(self._joins, _Join(at, a.target_key, url))
            self._version += 1


def _join_time(profile: SandboxProfile, seed: int) -> JoinTime | None:
    """The profile's people: who opens a link sent to them (the person's own draw, the same
    for every link) and how long after the message (drawn per link)."""
    if not profile.link_join_rate:
        return None
    low, high = profile.link_join_after_seconds

    def join_time(key: str, url: str, sent: datetime) -> datetime | None:
        if _unit(seed, "link_join", key) >= profile.link_join_rate:
            return None
        return sent + timedelta(seconds=low + _unit(seed, "link_join_after", key, url) * (high - low))

    return join_time
