"""The sandbox's profile: how the simulated Telegram answers (shares, waits, latency, replies, joins)."""

from __future__ import annotations

from typing import Annotated

import msgspec

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
