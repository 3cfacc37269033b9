"""The server span of each HTTP request (memsvc/tracing.py).

`create_app` adds this middleware only while tracing is on, outermost, so a request's span
covers everything the app does for it: body limits, auth, the route and its SDK call. The
span is named by the route template (`POST /v1/memories/search`), never the path: paths hold
record ids and cube names. A request that carries W3C trace context continues its trace.
"""

from __future__ import annotations

from typing import Any

from memsvc import tracing

__all__ = ["TracingMiddleware"]


class TracingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not tracing.active():
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500  # unless the app starts a response

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.server_span(method, scope["headers"]) as sp:
            try:
                await self.app(scope, receive, capture)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    sp.update_name(f"{method} {route}")
                    sp.set_attribute("http.route", route)
                sp.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracing.mark_error(sp, str(status))
