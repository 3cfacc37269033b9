"""Rate limiting per API key: a token bucket each (`MEMSVC_RATE_LIMIT_PER_SECOND` refill,
`MEMSVC_RATE_LIMIT_BURST` capacity), in this worker's memory. With several workers each
keeps its own buckets, so a key may get up to N times the rate across N workers."""

from __future__ import annotations

import hashlib
import threading
import time

__all__ = ["KeyRateLimiter"]


class KeyRateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.rate = per_second
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key digest -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        if not self.enabled:
            return 0.0
        digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
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
