"""What the parts of one engine share."""

from __future__ import annotations

from dataclasses import dataclass

from invite.engine.claims import Claimer
from invite.engine.recorder import Recorder
from invite.engine.registry import Registry
from invite.engine.repository import Repository
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings


@dataclass(frozen=True)
class EngineContext:
    settings: Settings
    clock: Clock
    repo: Repository
    registry: Registry
    claimer: Claimer
    recorder: Recorder
