"""The sandbox's draws: determined by a seed and the parts hashed, never by the order of calls."""

from __future__ import annotations

import hashlib


def _digest(seed: int, *parts: object, size: int = 8) -> bytes:
    """Bytes determined by the seed and the parts alone."""
    return hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=size).digest()


def _unit(seed: int, *parts: object) -> float:
    """A number in [0, 1) determined by the seed and the parts alone."""
    return int.from_bytes(_digest(seed, *parts), "big") / 2**64
