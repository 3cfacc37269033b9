"""Request body limits, enforced before any parsing (ASGI middleware).

A declared Content-Length over the limit is refused at once; a body without one (chunked) is
counted as it streams and refused when it passes the limit. Cube uploads get their own limit.
"""

from __future__ import annotations

import json
from typing import Any

from memsvc.errors import PayloadTooLarge

__all__ = ["BodyLimitMiddleware"]

IMPORT_PATH = "/v1/cubes/import"


def _error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()


class BodyLimitMiddleware:
    def __init__(self, app: Any, *, limit: int, import_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.import_limit = import_limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.import_limit if scope["path"] == IMPORT_PATH else self.limit
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(send, 400, "bad_request", "invalid Content-Length header")
                return
            if size > limit:
                msg = f"request body is {size} bytes; the limit is {limit}"
                await self._reply(send, 413, "payload_too_large", msg)
                return
        if scope["path"] == IMPORT_PATH:
            # The import route streams its body itself, so a PayloadTooLarge raised while
            # counting reaches the error handlers as a 413.
            await self.app(scope, self._counting(receive, limit), send)
            return
        # Elsewhere FastAPI reads the body and would turn any error into a 400, so a body of
        # unknown length is read here first (at most `limit` bytes) and replayed.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > limit:
                msg = f"request body is over the limit of {limit} bytes"
                await self._reply(send, 413, "payload_too_large", msg)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _counting(receive: Any, limit: int) -> Any:
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            return message

        return counted

    @staticmethod
    async def _reply(send: Any, status: int, code: str, message: str) -> None:
        body = _error(status, code, message)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
