"""Rate limiting per API key: a token bucket each (`MEMSVC_RATE_LIMIT_PER_SECOND` refill,
`MEMSVC_RATE_LIMIT_BURST` capacity).

`LocalRateLimiter` keeps the buckets in this process: no I/O per request, but with N workers
a key may get up to N times the rate. `SharedRateLimiter` (`MEMSVC_RATE_LIMIT_SHARED=true`)
keeps them in the database, one upsert per request, so the rate holds across every worker
and replica on it; meant for PostgreSQL, where that upsert takes well under a millisecond.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod

from memsvc.store.coordination import take_token
from memsvc.store.database import Database

__all__ = ["LocalRateLimiter", "RateLimiter", "SharedRateLimiter"]


def _digest(key: str) -> str:
    """Buckets are keyed by a digest: the database never holds a usable key."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class RateLimiter(ABC):
    """A token bucket per key: `take` is 0 when a request may go ahead, else the seconds
    until it could. Subclasses keep the buckets (`_take`)."""

    blocking = False  # take() does I/O: call it off the event loop

    def __init__(self, per_second: float, burst: int) -> None:
        self.rate = per_second
        self.burst = max(1, burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        return self._take(_digest(key)) if self.enabled else 0.0

    @abstractmethod
    def _take(self, digest: str) -> float: ...


class LocalRateLimiter(RateLimiter):
    def __init__(self, per_second: float, burst: int) -> None:
        super().__init__(per_second, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key digest -> (tokens, at)
        self._lock = threading.Lock()

    def _take(self, digest: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(digest, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[digest] = (tokens - 1.0, now)
                return 0.0
            self._buckets[digest] = (tokens, now)
            if len(self._buckets) > 100_000:  # forget idle keys rather than grow forever
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return (1.0 - tokens) / self.rate


class SharedRateLimiter(RateLimiter):
    blocking = True

    def __init__(self, db: Database, per_second: float, burst: int) -> None:
        super().__init__(per_second, burst)
        self.db = db

    def _take(self, digest: str) -> float:
        return take_token(self.db, digest, self.rate, self.burst, time.time())
