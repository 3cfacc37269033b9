"""`MemoryClient` / `AsyncMemoryClient`: the SDK over HTTP, with `Memory`'s surface.

    from memsvc import MemoryClient

    with MemoryClient("http://127.0.0.1:8000", api_key="msk_...") as mem:
        mem.add("Alice moved to Berlin.", user_id="alice")
        hits = mem.recall("where does alice live", user_id="alice")

Same methods, arguments, return types and exceptions as the embedded `Memory`. httpx style:
a shared base (`_base`) builds and checks each request and parses each response, and turns an
error response back into the core's exception class (`memsvc.errors.error_class`, the table
the server answers with); the twins `_sync.MemoryClient` and `_async.AsyncMemoryClient` add
only the I/O. Pass `transport=` (any httpx transport, e.g. `httpx.ASGITransport(app)`) to call
an app in-process.
"""

from __future__ import annotations

from memsvc.client._async import AsyncMemoryClient
from memsvc.client._base import raise_for_error
from memsvc.client._sync import MemoryClient

__all__ = ["AsyncMemoryClient", "MemoryClient", "raise_for_error"]
