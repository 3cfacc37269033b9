"""A bounded queue for local-LM work: a few jobs run, a few wait, the rest are turned away at
once (`Busy`, 429 with Retry-After) instead of holding request threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from memsvc.errors import Busy

__all__ = ["JobQueue"]


class JobQueue:
    """At most `slots` jobs run and `waiting` more wait; a caller beyond that is turned away
    at once with `Busy`, so LM work never holds more request threads than this. The retry
    hint is the queue's length times the mean time of recent jobs."""

    def __init__(self, name: str, slots: int, waiting: int) -> None:
        self.name = name
        self.slots = slots
        self.waiting = waiting
        self.running = 0
        self.queued = 0
        self._mean_s = 1.0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            if self.running >= self.slots and self.queued >= self.waiting:
                retry = max(1.0, self._mean_s * (self.queued + 1) / self.slots)
                raise Busy(
                    f"the local LM is busy ({self.running} {self.name} job(s) running, "
                    f"{self.queued} waiting): try again in {retry:.0f} s",
                    details={"retry_after": round(retry, 1), "queue": self.name},
                )
            self.queued += 1
            try:
                while self.running >= self.slots:
                    self._cond.wait()
            finally:
                self.queued -= 1
            self.running += 1
        t0 = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - t0)
                self._cond.notify()
