"""The simulator as seen by one account, and the factory that makes one per account.

Answers are drawn from a hash of (seed, account, action, target, attempt number), never from
the order of calls, so two replicas sharing a record, or a process restarted on it, get the
same answers. What belongs to the person (not found, privacy settings, already in the group)
hashes the person alone, so every account and every retry sees the same person. What belongs
to the account follows its own history, as on Telegram: a call during a FloodWait is refused
with the time left, and ``peer_flood_after`` / ``death_after`` count its answered actions.
A message an account already sent under the same ``random_id`` is not sent again: the answer
is ``RANDOM_ID_DUPLICATE`` (delivered), and nothing is recorded.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from invite.kernel.settings import Settings, SettingsError
from invite.platforms.base import (
    AccountData,
    AccountEvent,
    InviteLink,
    LinkJoin,
    LinkJoins,
    LinkMade,
    Outcome,
    OutcomeKind,
    RateLimits,
    Replies,
    Reply,
    Target,
)
from invite.platforms.sandbox.hashing import _digest, _unit
from invite.platforms.sandbox.profile import SandboxProfile
from invite.platforms.sandbox.record import (
    ActionKind,
    JsonlRecord,
    MemoryRecord,
    SandboxAction,
    SandboxRecord,
    text_hash,
)
from invite.platforms.sandbox.world import _join_time, _World

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
