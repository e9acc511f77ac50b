"""The statuses the engine writes, as the database spells them (the CHECK constraints of
sql/migrations/0001_schema.sql): a value outside these is a bug the type checker catches,
not a row the database refuses in the middle of a group commit."""

from __future__ import annotations

from enum import StrEnum


class TargetStatus(StrEnum):
    """invite_targets.status."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    CANCELLED = "cancelled"


class AccountStatus(StrEnum):
    """invite_accounts.status: an account across all tasks."""

    ACTIVE = "active"
    COOLDOWN = "cooldown"
    BLOCKED = "blocked"
    DISABLED = "disabled"


class TaskAccountStatus(StrEnum):
    """invite_task_accounts.status: an account in one task."""

    ACTIVE = "active"
    COOLDOWN = "cooldown"
    BLOCKED = "blocked"
    EXCLUDED = "excluded"  # it may not serve this task (no invite right in the group)


class TrialStatus(StrEnum):
    """invite_trials.state: a test invite (sql/migrations/0010_trials.sql)."""

    WAITING = "waiting"  # committed, no engine took it yet
    TAKEN = "taken"  # claimed: its target in flight
    REFUSED = "refused"  # a rule said no (its name in ``outcome``)
    EXPIRED = "expired"  # nobody took it in time
    DONE = "done"  # its action settled


class LinkState(StrEnum):
    """invite_targets.link_state: a one-use invite link offered (sql/migrations/0019_invite_links.sql)."""

    DUE = "due"  # the message carrying it is to be sent
    SENT = "sent"  # it went out
    JOINED = "joined"  # the person came in through it
    EXPIRED = "expired"  # it ran out unused, and was revoked
