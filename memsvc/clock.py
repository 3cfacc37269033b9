"""Where "now" comes from. The service reads the time through a clock so that tests and
evals can age a cube by months in a second (`ManualClock`), and ingest a conversation at its
own dates."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when if when.tzinfo else when.replace(tzinfo=UTC)

    def advance(self, *, days: float = 0, hours: float = 0, seconds: float = 0) -> datetime:
        with self._lock:
            self._now += timedelta(days=days, hours=hours, seconds=seconds)
            return self._now
