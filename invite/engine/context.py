"""What the parts of one engine share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from invite.engine.claims import Claimer
from invite.engine.recorder import Recorder
from invite.engine.registry import Registry
from invite.engine.repository import Repository
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings

if TYPE_CHECKING:  # trials.py runs through the runner, which reads this: no import cycle
    from invite.engine.trials import Trials


@dataclass(frozen=True)
class EngineContext:
    settings: Settings
    clock: Clock
    repo: Repository
    registry: Registry
    claimer: Claimer
    recorder: Recorder
    trials: Trials
