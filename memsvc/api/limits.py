"""Request limits, enforced before any parsing (ASGI middleware): body sizes, and in
no-auth mode who may send a request at all.

A declared Content-Length over the limit is refused at once; a body without one (chunked) is
counted as it streams and refused when it passes the limit. Cube uploads get their own limit.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from memsvc.errors import PayloadTooLarge

__all__ = ["BodyLimitMiddleware", "LoopbackOnlyMiddleware", "is_loopback"]

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


# ---- no-auth mode: loopback only, and no cross-site writes -------------------------------------

JSON_TYPES = ("application/json",)
CUBE_FILE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def is_loopback(host: str | None) -> bool:
    """Whether a bind address or a Host/Origin host names this machine's loopback."""
    if not host:
        return False
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host of a Host header ("127.0.0.1:8000", "[::1]:8000", "localhost")."""
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _loopback_origin(origin: str) -> bool:
    """An Origin of a page served from this machine ("null", sent by sandboxed and file://
    pages, is not one)."""
    try:
        parts = urlsplit(origin.strip())
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname)
    except ValueError:
        return False


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class LoopbackOnlyMiddleware:
    """What keeps a server without API keys to its own machine's programs.

    Without keys the only thing between a web page and the memories is the browser's
    same-origin policy, which does not stop a page from *sending* a form post or a body-less
    fetch to 127.0.0.1, nor a DNS-rebound name from reaching it. So every request must come
    from a loopback peer, name a loopback Host, carry no foreign Origin (browsers send one on
    every cross-site POST), and a body must have the type its route reads: a page can send
    only form and text/plain bodies without a CORS preflight, which memsvc never grants.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status, code, message = refusal
            await BodyLimitMiddleware._reply(send, status, code, message)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope: dict) -> tuple[int, str, str] | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        if client is not None and not is_loopback(client[0]):
            return 403, "forbidden", "this server runs without API keys: loopback clients only"
        host = headers.get("host")
        if host is None or not is_loopback(_host_of(host)):
            return 403, "forbidden", "this server runs without API keys: Host must be loopback"
        origins = [v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"]
        if not all(_loopback_origin(o) for o in origins):
            msg = "this server runs without API keys: cross-site requests are refused"
            return 403, "forbidden", msg
        if scope["method"] not in _BODY_METHODS:
            return None
        length = headers.get("content-length", "0").strip()
        has_body = "transfer-encoding" in headers or not length.isdigit() or int(length) > 0
        media = _media_type(headers.get("content-type"))
        if scope["path"] == IMPORT_PATH:
            if media not in CUBE_FILE_TYPES:
                allowed = ", ".join(CUBE_FILE_TYPES)
                return 415, "unsupported_media_type", f"a cube file is sent as one of {allowed}"
        elif has_body and not (media in JSON_TYPES or media.endswith("+json")):
            return 415, "unsupported_media_type", "the request body must be application/json"
        return None
