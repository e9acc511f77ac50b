"""The sandbox driver: a deterministic Telegram simulator, and a sandbox accounts provider.

A documented product feature, never a silent fallback: dry runs ("how long will this
campaign take with my accounts?"), demos, load tests. A task records which driver ran it.

``profile`` says how the simulated Telegram answers; ``record`` keeps what it did (its only
state); ``hashing`` draws its answers; ``world`` is what it remembers, rebuilt from the record;
``strategy`` answers one account's calls (``SandboxFactory`` makes one per account);
``accounts`` is the accounts provider when no Integration Service is configured.
"""

from invite.platforms.sandbox.accounts import SandboxAccounts
from invite.platforms.sandbox.profile import SandboxProfile
from invite.platforms.sandbox.record import (
    ActionKind,
    JsonlRecord,
    MemoryRecord,
    SandboxAction,
    SandboxRecord,
    read_record,
    sends_per_target,
)
from invite.platforms.sandbox.strategy import RANDOM_ID_DUPLICATE, SandboxFactory, SandboxStrategy

__all__ = [
    "RANDOM_ID_DUPLICATE",
    "ActionKind",
    "JsonlRecord",
    "MemoryRecord",
    "SandboxAccounts",
    "SandboxAction",
    "SandboxFactory",
    "SandboxProfile",
    "SandboxRecord",
    "SandboxStrategy",
    "read_record",
    "sends_per_target",
]
