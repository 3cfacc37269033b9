"""Waiting for a served memsvc: the readiness poll the benchmarks and the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

__all__ = ["until_ready"]


def until_ready(
    url: str, alive: Callable[[], bool], *, timeout: float = 120.0, every: float = 0.25
) -> bool:
    """True once `url`/readyz answers 200 (model loaded, database up); False as soon as
    `alive()` says the server is gone or `timeout` seconds pass, so a caller never waits
    out the timeout on a server that already died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(every)
