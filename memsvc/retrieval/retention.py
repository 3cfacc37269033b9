"""Ebbinghaus retention: how well a memory is still held, R = exp(-dt / S).

  S  = base_days * 4 ** (importance - 0.5) * strength   (stability, days)
  dt = now - (last_recalled_at or created_at)
  on recall:  strength <- strength * (1 + growth * (1 - R))   and dt restarts at 0

`strength` starts at 1 and only grows; importance sets the prior (x2 at 1, /2 at 0). The
growth is spacing-weighted, as in spaced repetition: a recall when the memory was nearly
gone (R ~ 0) multiplies strength by 1 + growth; a recall right after the last one adds
almost nothing, so a burst of recalls does not make a memory permanent. Pinned records
hold R = 1. As R falls a record's stored vector is demoted (float32 -> int8 -> 1-bit) and
finally it is archived (`target_state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ForgetPolicy", "reinforced", "retention", "stability_days", "target_state"]

DAY = 86400.0


@dataclass(frozen=True)
class ForgetPolicy:
    base_days: float = 180.0
    growth: float = 1.5
    int8_below: float = 0.5
    binary_below: float = 0.1
    archive_below: float = 0.01

    def __post_init__(self) -> None:
        if self.base_days <= 0 or self.growth < 0:
            raise ValueError("base_days must be > 0 and growth >= 0")
        if not 1 >= self.int8_below >= self.binary_below >= self.archive_below >= 0:
            raise ValueError("thresholds must satisfy 1 >= int8 >= binary >= archive >= 0")


def stability_days(importance: float, strength: float, policy: ForgetPolicy) -> float:
    return policy.base_days * 4.0 ** (float(importance) - 0.5) * max(float(strength), 1e-6)


def retention(row: Any, now: datetime, policy: ForgetPolicy) -> float:
    """`row`: anything with pinned, importance, strength, last_recalled_at, created_at."""
    if getattr(row, "pinned", False):
        return 1.0
    last = row.last_recalled_at or row.created_at
    dt = max(0.0, (now - last).total_seconds()) / DAY
    return math.exp(-dt / stability_days(row.importance, row.strength, policy))


def reinforced(strength: float, r: float, policy: ForgetPolicy) -> float:
    """Strength after one recall made at retention `r`."""
    return float(strength) * (1.0 + policy.growth * (1.0 - min(max(r, 0.0), 1.0)))


def target_state(r: float, policy: ForgetPolicy) -> str:
    """ "float32", "int8", "binary" (the stored precision it should have) or "archive"."""
    if r < policy.archive_below:
        return "archive"
    if r < policy.binary_below:
        return "binary"
    if r < policy.int8_below:
        return "int8"
    return "float32"
