"""The sandbox driver: a deterministic Telegram simulator, and a sandbox accounts provider.

A documented product feature, never a silent fallback: dry runs ("how long will this
campaign take with my accounts?"), demos, load tests. A task records which driver ran it.

Answers are drawn from a hash of (seed, account, action, target, attempt number), never from
the order of calls, so two replicas sharing a record, or a process restarted on it, get the
same answers. What belongs to the person (not found, privacy settings, already in the group)
hashes the person alone, so every account and every retry sees the same person. What belongs
to the account follows its own history, as on Telegram: a call during a FloodWait is refused
with the time left, and ``peer_flood_after`` / ``death_after`` count its answered actions. Every
action is written to a ``SandboxRecord`` before its answer is returned; the JSONL record is
appended with one ``write`` per action, so a process killed with SIGKILL leaves the complete
list of what it "sent", and a new process (or another replica) reads its state back from it.
A message an account already sent under the same ``random_id`` is not sent again: the answer
is ``RANDOM_ID_DUPLICATE`` (delivered), and nothing is recorded.

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

import base64
import bisect
import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple, Protocol

import msgspec

from invite.kernel.settings import Settings, SettingsError
from invite.platforms.base import (
    AccountData,
    AccountEvent,
    InviteLink,
    LeasePurpose,
    LinkJoin,
    LinkJoins,
    LinkMade,
    Outcome,
    OutcomeKind,
    RateLimits,
    Replies,
    Reply,
    Target,
    UsageStats,
)

if TYPE_CHECKING:
    from invite.kernel.clock import Clock

DRIVER = "sandbox"
# Telegram's answer to a message sent again under a random_id it already delivered
RANDOM_ID_DUPLICATE = "RANDOM_ID_DUPLICATE: sent before under this random_id, not sent again"
LINK_PREFIX = "https://t.me/+"
_LINK_IN_TEXT = re.compile(re.escape(LINK_PREFIX) + r"[A-Za-z0-9_-]+")
# What the accounts provider is told of the sandbox's account-level answers: the events the
# Telegram adapter's error table gives the errors the sandbox names (invite/platforms/telegram/
# errors.py); the others concern the person or the moment and are not reported.
EVENTS: dict[OutcomeKind, AccountEvent] = {
    OutcomeKind.FLOOD_WAIT: AccountEvent.FLOOD_WAIT,
    OutcomeKind.PEER_FLOOD: AccountEvent.PEER_FLOOD,
    OutcomeKind.ACCOUNT_DEAD: AccountEvent.USER_DEACTIVATED,
}

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class SandboxProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the simulated Telegram answers. Success is whatever the other rates leave over."""

    # properties of the person: the same for every account and every attempt
    not_found_rate: Rate = 0.0
    privacy_restricted_rate: Rate = 0.0  # invites and messages; adding a contact is not refused
    # invites only: messages are accepted (the people a link in a message is for)
    invite_privacy_rate: Rate = 0.0
    already_member_rate: Rate = 0.0  # invites: in the group before the campaign
    blocked_rate: Rate = 0.0  # messages: the person blocks whoever writes to them (USER_IS_BLOCKED)
    # drawn afresh for each attempt
    flood_wait_rate: Rate = 0.0
    flood_wait_seconds: tuple[Seconds, ...] = (30.0,)  # the wait, one of these ...
    flood_wait_range: tuple[Seconds, Seconds] | None = None  # ... or whole seconds in [min, max]
    transient_rate: Rate = 0.0
    death_rate: Rate = 0.0
    # per account: counted over its answered actions (not refused for flood, spam flag or death)
    peer_flood_after: Count | None = None  # the spam flag from the (K+1)-th action on; None: never
    death_after: Count | None = None  # banned from the (N+1)-th action on; None: never
    latency_seconds: tuple[Seconds, Seconds] = (0.0, 0.0)  # [min, max], slept on the injected clock
    dead_accounts: frozenset[str] = frozenset()
    # frozen by Telegram: they connect and read, every action is refused (FROZEN_METHOD_INVALID)
    frozen_accounts: frozenset[str] = frozenset()
    groups_without_right: frozenset[str] = frozenset()  # no account may invite into these
    # replies to messages, properties of the person (shares of everyone messaged): they answer
    # an account's latest message to them ``reply_after_seconds`` later with ``reply_text``,
    # or with ``opt_out_reply_text`` (asking not to be written to again)
    reply_rate: Rate = 0.0
    opt_out_reply_rate: Rate = 0.0
    reply_after_seconds: Seconds = 600.0
    reply_text: str = "Thanks, tell me more"
    opt_out_reply_text: str = "Пожалуйста, больше не пишите мне"
    # invite links, a property of the person (a share of everyone sent a link): they join
    # through the first usable one, this long after the message ([min, max], drawn per link)
    link_join_rate: Rate = 0.0
    link_join_after_seconds: tuple[Seconds, Seconds] = (300.0, 7200.0)

    def __post_init__(self) -> None:
        person = (
            self.not_found_rate
            + self.privacy_restricted_rate
            + self.invite_privacy_rate
            + self.already_member_rate
        )
        if person > 1.0:
            raise ValueError(
                "not_found_rate + privacy_restricted_rate + invite_privacy_rate + already_member_rate must be <= 1"
            )
        if self.flood_wait_rate + self.transient_rate > 1.0:
            raise ValueError("flood_wait_rate + transient_rate must be <= 1")
        if self.reply_rate + self.opt_out_reply_rate > 1.0:
            raise ValueError("reply_rate + opt_out_reply_rate must be <= 1")
        if not self.flood_wait_seconds:
            raise ValueError("flood_wait_seconds must name at least one duration")
        for name, bounds in (
            ("flood_wait_range", self.flood_wait_range),
            ("latency_seconds", self.latency_seconds),
            ("link_join_after_seconds", self.link_join_after_seconds),
        ):
            if bounds is not None and not 0 <= bounds[0] <= bounds[1]:
                raise ValueError(f"{name} must be [min, max] with 0 <= min <= max")

    @classmethod
    def zero(cls) -> SandboxProfile:
        """Every action succeeds at once: for benchmarks of the engine itself."""
        return cls()

    @classmethod
    def realistic(cls) -> SandboxProfile:
        """Rough proportions of a real outreach campaign (for demos and dry runs)."""
        return cls(
            not_found_rate=0.03,
            # 12 % refuse invites, most of them only invites (Telegram's "who can add me")
            privacy_restricted_rate=0.04,
            invite_privacy_rate=0.08,
            already_member_rate=0.05,
            flood_wait_rate=0.01,
            flood_wait_range=(20.0, 900.0),
            transient_rate=0.01,
            death_rate=0.0005,
            latency_seconds=(0.2, 1.2),
            reply_rate=0.05,
            opt_out_reply_rate=0.01,
            reply_after_seconds=1800.0,
            link_join_rate=0.3,
        )

    @classmethod
    def parse(cls, text: str) -> SandboxProfile:
        """``zero``, ``realistic``, or a JSON object of fields (e.g. from SANDBOX_PROFILE)."""
        named = {"zero": cls.zero, "realistic": cls.realistic}
        if text.strip() in named:
            return named[text.strip()]()
        return msgspec.json.decode(text, type=cls)


class ActionKind(StrEnum):
    INVITE = "invite"
    MESSAGE = "message"
    CONTACT = "contact"
    LINK = "link"  # an invite link made (target_key empty)
    REVOKE_LINK = "revoke_link"


_PERSON_ACTIONS = frozenset({ActionKind.INVITE, ActionKind.MESSAGE, ActionKind.CONTACT})


class SandboxAction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One action the simulator received, and what it answered. Message texts are kept as a hash.

    Plain values only, so the record (an action per target) stays out of the garbage collector's
    full passes, which otherwise grow with it and stall the event loop the service shares.
    """

    at: datetime
    account_id: str
    action: ActionKind
    target_key: str
    group_id: str | None = None
    text_hash: str | None = None
    random_id: int | None = None  # a message's idempotency key
    link_url: str | None = None  # the link made or revoked; for a message, the link its text carries
    expires_at: datetime | None = None  # a link made: when it stops working
    attempt: int  # earlier actions of this kind on this person (and group / text)
    outcome: OutcomeKind
    seconds: float = 0.0
    detail: str = ""

    @property
    def destination(self) -> str:
        return self.group_id or self.text_hash or ""


class SandboxRecord(Protocol):
    """Where the simulator writes what it did; positions let readers pick up what is new."""

    def append(self, action: SandboxAction) -> None: ...

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]: ...


class MemoryRecord:
    def __init__(self) -> None:
        self.actions: list[SandboxAction] = []

    def append(self, action: SandboxAction) -> None:
        self.actions.append(action)

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]:
        return self.actions[position:], len(self.actions)


class JsonlRecord:
    """An append-only JSON-lines file, shared safely by several processes.

    Each action is one ``os.write`` on an ``O_APPEND`` descriptor: it reaches the kernel
    before the answer is returned (a SIGKILL loses nothing), and lines of concurrent
    writers never interleave. ``read_since`` takes byte offsets and complete lines only.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, action: SandboxAction) -> None:
        os.write(self._fd, _ENCODER.encode(action) + b"\n")

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]:
        return _read_jsonl(self.path, position)

    def close(self) -> None:
        os.close(self._fd)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(SandboxAction)


def _read_jsonl(path: Path, position: int) -> tuple[list[SandboxAction], int]:
    with path.open("rb") as file:
        file.seek(position)
        chunk = file.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return [_DECODER.decode(line) for line in complete.splitlines() if line], position + len(complete)


def read_record(path: str | Path) -> list[SandboxAction]:
    """Every action in a JSONL record (a last line cut short by a crash is left out)."""
    return _read_jsonl(Path(path), 0)[0]


def sends_per_target(
    actions: Iterable[SandboxAction], action: ActionKind | None = None
) -> Counter[tuple[ActionKind, str, str]]:
    """How many times each person really got each thing: (action, group or text hash, target key) → count.

    Only successful actions count. The same message to the same person twice counts 2, so
    ``max(counts.values()) == 1`` proves nobody got it twice.
    """
    return Counter(
        (a.action, a.destination, a.target_key)
        for a in actions
        if a.outcome is OutcomeKind.SUCCESS
        and a.action in _PERSON_ACTIONS
        and (action is None or a.action is action)
    )


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _digest(seed: int, *parts: object, size: int = 8) -> bytes:
    """Bytes determined by the seed and the parts alone."""
    return hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=size).digest()


def _unit(seed: int, *parts: object) -> float:
    """A number in [0, 1) determined by the seed and the parts alone."""
    return int.from_bytes(_digest(seed, *parts), "big") / 2**64


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


_DEAD = Outcome(
    OutcomeKind.ACCOUNT_DEAD, detail="USER_DEACTIVATED_BAN", event=EVENTS[OutcomeKind.ACCOUNT_DEAD]
)
_PEER_FLOOD = Outcome(OutcomeKind.PEER_FLOOD, detail="PEER_FLOOD", event=EVENTS[OutcomeKind.PEER_FLOOD])
# as the Telegram adapter's error table answers for a frozen account
_FROZEN = Outcome(
    OutcomeKind.ACCOUNT_DEAD, detail="FROZEN_METHOD_INVALID", event=EVENTS[OutcomeKind.ACCOUNT_DEAD]
)


def _flood_wait(seconds: float, detail: str) -> Outcome:
    return Outcome(OutcomeKind.FLOOD_WAIT, seconds, detail, EVENTS[OutcomeKind.FLOOD_WAIT])


class SandboxStrategy:
    """The simulator as seen by one account (implements ``InviteStrategy``)."""

    driver: str = DRIVER

    def __init__(
        self,
        world: _World,
        account: AccountData,
        *,
        profile: SandboxProfile,
        seed: int,
        clock: Clock,
        limits: RateLimits,
    ) -> None:
        self._world = world
        self._account_id = account.id
        self._profile = profile
        self._seed = seed
        self._clock = clock
        self._limits = limits

    async def initialize_client(self, account: AccountData) -> Outcome:
        self._world.catch_up()
        if self._is_dead(account.id):
            return _DEAD
        return Outcome(OutcomeKind.SUCCESS)

    async def check_invite_right(self, group_id: str) -> Outcome:
        self._world.catch_up()
        if self._account_id in self._profile.frozen_accounts:
            return _FROZEN
        if self._is_dead(self._account_id):
            return _DEAD
        if group_id in self._profile.groups_without_right:
            return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="CHAT_ADMIN_REQUIRED")
        return Outcome(OutcomeKind.SUCCESS)

    async def invite_to_group(self, target: Target, group_id: str) -> Outcome:
        return await self._act(ActionKind.INVITE, target, group_id=group_id)

    async def send_message(self, target: Target, text: str, random_id: int) -> Outcome:
        """As Telegram: a message this account already sent under ``random_id`` is not sent again,
        and the answer says so (``RANDOM_ID_DUPLICATE``, which means it was delivered). The first
        of the world's invite links in the text is recorded with it (the text itself is not)."""
        self._world.catch_up()
        link = next((url for url in _LINK_IN_TEXT.findall(text) if url in self._world.links), None)
        return await self._act(
            ActionKind.MESSAGE, target, text_hash=text_hash(text), random_id=random_id, link_url=link
        )

    async def add_to_contacts(self, target: Target) -> Outcome:
        return await self._act(ActionKind.CONTACT, target)

    async def was_message_sent(self, target: Target, since: datetime) -> bool | None:
        """From the record, as Telegram would tell from the account's dialog with the person: a
        dead account can't ask, a person nobody finds can't be looked up."""
        self._world.catch_up()
        p = self._profile
        if self._is_dead(self._account_id):
            return None
        if p.not_found_rate and _unit(self._seed, "person", target.key) < p.not_found_rate:
            return None
        sent = self._world.messaged.get((self._account_id, target.key))
        return sent is not None and sent >= since

    async def read_replies(self, since: datetime) -> Replies:
        """As Telegram's dialogs would show them: the answers (``reply_rate``,
        ``opt_out_reply_rate``) of the people this account messaged, dated from ``since`` to now;
        a dead account reads nothing, one in a FloodWait is refused with the time left."""
        self._world.catch_up()
        p = self._profile
        refused = self._reading_refusal()
        if refused is not None:
            return Replies([], refused)
        now = self._clock.now()
        replies = []
        if p.reply_rate or p.opt_out_reply_rate:
            after = timedelta(seconds=p.reply_after_seconds)
            for key, sent in self._world.messaged_by[self._account_id].items():
                draw = _unit(self._seed, "replies", key)
                if draw >= p.opt_out_reply_rate + p.reply_rate or not since <= sent + after <= now:
                    continue
                text = p.opt_out_reply_text if draw < p.opt_out_reply_rate else p.reply_text
                replies.append(Reply((key,), sent + after, text))
        return Replies(sorted(replies, key=lambda r: r.at), Outcome(OutcomeKind.SUCCESS))

    async def create_invite_link(self, group_id: str, expires_at: datetime) -> LinkMade:
        """A one-use link until ``expires_at``, refused as Telegram would: a frozen, dead or
        waiting account, a group it has no right in (``groups_without_right``), an expiry not
        in the future; FloodWaits and transient errors are drawn as for every action."""
        self._world.catch_up()
        attempt = self._world.link_calls[self._account_id]
        latency = self._latency(ActionKind.LINK, group_id, attempt)
        if latency > 0:
            await self._clock.sleep(latency)
            self._world.catch_up()
            attempt = self._world.link_calls[self._account_id]
        refused = self._link_refusal(group_id, expires_at, attempt)
        url = self._link_url(attempt) if refused is None else None
        outcome = Outcome(OutcomeKind.SUCCESS) if refused is None else refused
        self._world.write(
            SandboxAction(
                at=self._clock.now(),
                account_id=self._account_id,
                action=ActionKind.LINK,
                target_key="",
                group_id=group_id,
                link_url=url,
                expires_at=expires_at,
                attempt=attempt,
                outcome=outcome.kind,
                seconds=outcome.seconds,
                detail=outcome.detail,
            )
        )
        return LinkMade(outcome, None if url is None else InviteLink(url, expires_at))

    async def link_joins(self, group_id: str, urls: Sequence[str]) -> LinkJoins:
        """The joins through ``urls`` into ``group_id`` whose time has come, oldest first; each
        person named by the target key the link was sent to."""
        self._world.catch_up()
        refused = self._reading_refusal()
        if refused is not None:
            return LinkJoins([], refused)
        wanted = set(urls)
        made, _ = self._world.joins(self._clock.now())
        joins = [
            LinkJoin(j.url, (j.key,), j.at)
            for j in made
            if j.url in wanted and self._world.links[j.url].group_id == group_id
        ]
        return LinkJoins(joins, Outcome(OutcomeKind.SUCCESS))

    async def revoke_invite_link(self, group_id: str, url: str) -> Outcome:
        """Revoked from now on; a link the world does not have in this group, or has revoked
        already, is done (as the Telegram adapter answers INVITE_HASH_EXPIRED)."""
        self._world.catch_up()
        if self._account_id in self._profile.frozen_accounts:
            return _FROZEN
        refused = self._reading_refusal()
        if refused is not None:
            return refused
        link = self._world.links.get(url)
        if link is None or link.group_id != group_id or link.revoked_at is not None:
            return Outcome(OutcomeKind.SUCCESS, detail="INVITE_HASH_EXPIRED: already revoked or gone")
        self._world.write(
            SandboxAction(
                at=self._clock.now(),
                account_id=self._account_id,
                action=ActionKind.REVOKE_LINK,
                target_key="",
                group_id=group_id,
                link_url=url,
                attempt=0,
                outcome=OutcomeKind.SUCCESS,
            )
        )
        return Outcome(OutcomeKind.SUCCESS)

    def get_rate_limits(self) -> RateLimits:
        return self._limits

    async def close(self) -> None:
        return None

    def _reading_refusal(self) -> Outcome | None:
        """Why this account can't ask now: dead, or in a FloodWait (with the time left)."""
        if self._is_dead(self._account_id):
            return _DEAD
        now = self._clock.now()
        until = self._world.flood_until.get(self._account_id)
        if until is not None and now < until:
            return _flood_wait((until - now).total_seconds(), "FLOOD_WAIT_X (still waiting)")
        return None

    def _link_refusal(self, group_id: str, expires_at: datetime, attempt: int) -> Outcome | None:
        p = self._profile
        if self._account_id in p.frozen_accounts:
            return _FROZEN
        refused = self._reading_refusal()
        if refused is not None:
            return refused
        if group_id in p.groups_without_right:
            return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="CHAT_ADMIN_REQUIRED")
        if expires_at <= self._clock.now():
            return Outcome(OutcomeKind.CHAT_UNAVAILABLE, detail="EXPIRE_DATE_INVALID")
        if p.flood_wait_rate or p.transient_rate:
            draw = _unit(self._seed, "attempt", self._account_id, ActionKind.LINK, group_id, attempt)
            if draw < p.flood_wait_rate:
                return _flood_wait(self._flood_seconds(ActionKind.LINK, group_id, attempt), "FLOOD_WAIT_X")
            if draw < p.flood_wait_rate + p.transient_rate:
                return Outcome(OutcomeKind.TRANSIENT, detail="RPC_CALL_FAIL")
        return None

    def _link_url(self, attempt: int) -> str:
        """Telegram's shape of a link: ``https://t.me/+`` and 16 URL-safe characters."""
        digest = _digest(self._seed, "link", self._account_id, attempt, size=12)
        return LINK_PREFIX + base64.urlsafe_b64encode(digest).decode()

    async def _act(
        self,
        action: ActionKind,
        target: Target,
        *,
        group_id: str | None = None,
        text_hash: str | None = None,
        random_id: int | None = None,
        link_url: str | None = None,
    ) -> Outcome:
        key = target.key
        destination = group_id or text_hash or ""
        self._world.catch_up()
        attempt = self._world.attempts[(action.value, destination, key)]
        latency = self._latency(action, key, attempt)
        if latency > 0:
            await self._clock.sleep(latency)
            self._world.catch_up()
            attempt = self._world.attempts[(action.value, destination, key)]
        # From here to the write nothing awaits: the decision and its record are one step.
        if random_id is not None and (self._account_id, random_id) in self._world.random_ids:
            return Outcome(OutcomeKind.SUCCESS, detail=RANDOM_ID_DUPLICATE)  # nothing sent, nothing recorded
        outcome = self._decide(action, key, group_id, attempt)
        self._world.write(
            SandboxAction(
                at=self._clock.now(),
                account_id=self._account_id,
                action=action,
                target_key=key,
                group_id=group_id,
                text_hash=text_hash,
                random_id=random_id,
                link_url=link_url,
                attempt=attempt,
                outcome=outcome.kind,
                seconds=outcome.seconds,
                detail=outcome.detail,
            )
        )
        return outcome

    def _decide(self, action: ActionKind, key: str, group_id: str | None, attempt: int) -> Outcome:
        p, account, seed = self._profile, self._account_id, self._seed
        if account in p.frozen_accounts:
            return _FROZEN
        if self._is_dead(account):
            return _DEAD
        until = self._world.flood_until.get(account)
        now = self._clock.now()
        if until is not None and now < until:
            return _flood_wait((until - now).total_seconds(), "FLOOD_WAIT_X (still waiting)")
        answered = self._world.answered[account]
        if p.peer_flood_after is not None and answered >= p.peer_flood_after:
            return _PEER_FLOOD
        # (a zero rate skips its hash: the zero profile is what the engine benchmark drives)
        died_after_n = p.death_after is not None and answered >= p.death_after
        if died_after_n or (
            p.death_rate and _unit(seed, "death", account, action, key, attempt) < p.death_rate
        ):
            return _DEAD
        draw = (
            _unit(seed, "attempt", account, action, key, attempt)
            if p.flood_wait_rate or p.transient_rate
            else 1.0
        )
        if draw < p.flood_wait_rate:
            return _flood_wait(self._flood_seconds(action, key, attempt), "FLOOD_WAIT_X")
        if draw < p.flood_wait_rate + p.transient_rate:
            return Outcome(OutcomeKind.TRANSIENT, detail="RPC_CALL_FAIL")
        if action is ActionKind.INVITE and group_id is not None and self._joined_by_link(key, group_id):
            # in the group now, whatever their privacy settings keep others from doing
            return Outcome(OutcomeKind.ALREADY_MEMBER, detail="USER_ALREADY_PARTICIPANT")
        refusing = p.not_found_rate + p.privacy_restricted_rate
        person = _unit(seed, "person", key) if refusing or p.invite_privacy_rate else 1.0
        if person < p.not_found_rate:
            return Outcome(OutcomeKind.NOT_FOUND, detail="USERNAME_NOT_OCCUPIED")
        if action is not ActionKind.CONTACT and person < refusing:
            return Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail="USER_PRIVACY_RESTRICTED")
        if action is ActionKind.INVITE and person < refusing + p.invite_privacy_rate:
            return Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail="USER_PRIVACY_RESTRICTED")
        if action is ActionKind.MESSAGE and p.blocked_rate and _unit(seed, "blocks", key) < p.blocked_rate:
            return Outcome(OutcomeKind.BLOCKED, detail="USER_IS_BLOCKED")
        if action is ActionKind.INVITE and group_id is not None and self._is_member(key, group_id):
            return Outcome(OutcomeKind.ALREADY_MEMBER, detail="USER_ALREADY_PARTICIPANT")
        return Outcome(OutcomeKind.SUCCESS)

    def _is_dead(self, account_id: str) -> bool:
        """Banned or deactivated (a frozen account is neither: it connects and reads)."""
        if account_id in self._profile.frozen_accounts:
            return False
        return account_id in self._profile.dead_accounts or account_id in self._world.dead

    def _joined_by_link(self, key: str, group_id: str) -> bool:
        if not self._profile.link_join_rate:
            return False
        _, joined = self._world.joins(self._clock.now())
        return (group_id, key) in joined

    def _is_member(self, key: str, group_id: str) -> bool:
        if key in self._world.members[group_id]:
            return True
        # Only people found and not restricted get here; scale so that already_member_rate
        # is a share of everyone, as the profile's other person rates are.
        p = self._profile
        reachable = 1.0 - p.not_found_rate - p.privacy_restricted_rate - p.invite_privacy_rate
        return (
            p.already_member_rate > 0
            and _unit(self._seed, "member", group_id, key) * reachable < p.already_member_rate
        )

    def _flood_seconds(self, action: ActionKind, key: str, attempt: int) -> float:
        draw = _unit(self._seed, "flood", self._account_id, action, key, attempt)
        bounds = self._profile.flood_wait_range
        if bounds is not None:
            return float(round(bounds[0] + draw * (bounds[1] - bounds[0])))
        choices = self._profile.flood_wait_seconds
        return choices[int(draw * len(choices))]

    def _latency(self, action: ActionKind, key: str, attempt: int) -> float:
        low, high = self._profile.latency_seconds
        if high <= 0:
            return 0.0
        return low + _unit(self._seed, "latency", self._account_id, action, key, attempt) * (high - low)


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


class SandboxFactory:
    """Makes one ``SandboxStrategy`` per account, all sharing one simulated Telegram (implements ``StrategyFactory``)."""

    driver: str = DRIVER

    def __init__(
        self,
        clock: Clock,
        *,
        limits: RateLimits,
        profile: SandboxProfile | None = None,
        seed: int = 1,
        record: SandboxRecord | None = None,
    ) -> None:
        self.profile = profile or SandboxProfile.zero()
        self.record: SandboxRecord = record if record is not None else MemoryRecord()
        self._clock = clock
        self._limits = limits
        self._seed = seed
        self._world = _World(self.record, _join_time(self.profile, seed))
        self._world.catch_up()

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock, *, profile: SandboxProfile | None = None
    ) -> SandboxFactory:
        """The service's sandbox: Telegram's limits from settings, SANDBOX_PROFILE, SANDBOX_RECORD_PATH."""
        limits = RateLimits(
            daily_quota=settings.daily_quota,
            daily_quota_with_link=settings.daily_quota_with_link,
            min_pause_seconds=settings.min_pause_seconds,
        )
        if profile is None:
            try:
                profile = SandboxProfile.parse(settings.sandbox_profile)
            except msgspec.DecodeError as exc:
                raise SettingsError(
                    f"SANDBOX_PROFILE: {exc} (use zero, realistic or a JSON object)"
                ) from None
        record = JsonlRecord(settings.sandbox_record_path) if settings.sandbox_record_path else None
        return cls(
            clock,
            limits=limits,
            profile=profile,
            seed=settings.sandbox_seed,
            record=record,
        )

    def for_account(self, account: AccountData) -> SandboxStrategy:
        return SandboxStrategy(
            self._world,
            account,
            profile=self.profile,
            seed=self._seed,
            clock=self._clock,
            limits=self._limits,
        )


class Released(msgspec.Struct, frozen=True):
    account_id: str
    user_id: str
    usage: UsageStats


class Reported(msgspec.Struct, frozen=True):
    account_id: str
    user_id: str
    event: AccountEvent
    message: str


class SandboxAccounts:
    """The built-in accounts provider when no Integration Service is configured (implements ``AccountsProvider``).

    Each tenant has the same few sandbox accounts; leases always succeed for the tenant's
    own accounts and never run out (no ``lease_seconds``: nothing to renew). What the engine
    releases and reports is kept so it can be looked at.
    """

    def __init__(self, accounts_per_tenant: int) -> None:
        self._per_tenant = accounts_per_tenant
        self.leases: list[tuple[str, str, LeasePurpose]] = []  # (account_id, user_id, purpose)
        self.releases: list[Released] = []
        self.reports: list[Reported] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxAccounts:
        return cls(settings.sandbox_accounts_per_tenant)

    async def list_accounts(self, user_id: str) -> list[AccountData]:
        return [
            AccountData(id=f"sandbox-{user_id}-{n}", user_id=user_id, label=f"Sandbox account {n}")
            for n in range(1, self._per_tenant + 1)
        ]

    async def lease(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """The account with an empty session; None for an id that is not one of this tenant's."""
        account = await self.renew(account_id, user_id, purpose)
        if account is not None:
            self.leases.append((account_id, user_id, purpose))
        return account

    async def renew(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """The account again (its lease never runs out); None for an id that is not one of this tenant's."""
        return next((a for a in await self.list_accounts(user_id) if a.id == account_id), None)

    async def release(self, account_id: str, user_id: str, usage: UsageStats) -> None:
        self.releases.append(Released(account_id, user_id, usage))

    async def report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None:
        self.reports.append(Reported(account_id, user_id, event, message))
