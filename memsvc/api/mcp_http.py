"""MCP over streamable HTTP at `/mcp`, behind the same API keys and rate limits as `/v1`.

Stateless and JSON-answering, so any worker behind a load balancer can serve any call (no
session pinned to one process). The key is checked here, before the MCP transport sees the
request; the tenant it names rides in the ASGI scope to the tool, which reads it back from
the request its context carries.
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from memsvc import Memory
from memsvc.api.deps import api_key, authorize
from memsvc.api.errors import memsvc_error_response
from memsvc.api.mcp_tools import build_mcp_server
from memsvc.errors import AuthError, RateLimited

__all__ = ["MCP_PATH", "mount_mcp"]

MCP_PATH = "/mcp"
_TENANT = "memsvc.tenant"


class _KeyGate:
    """API-key auth and the per-key rate limit in front of the MCP transport."""

    def __init__(self, inner: ASGIApp, memory: Memory, auth: bool) -> None:
        self.inner = inner
        self.memory = memory
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.auth:
            token = api_key(Headers(scope=scope).get("authorization"))
            try:
                if token is None:
                    raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
                scope[_TENANT] = await authorize(self.memory, token)
            except (AuthError, RateLimited) as exc:
                await memsvc_error_response(exc)(scope, receive, send)
                return
        await self.inner(scope, receive, send)


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _transport_security(auth: bool) -> TransportSecuritySettings:
    """With API keys, the key is what keeps other sites out (behind a load balancer the Host
    is whatever name the service is reached by). Without keys, a DNS-rebound page could
    drive the tools: only loopback Hosts and Origins then (the app checks them first too)."""
    if auth:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h + port for h in _LOOPBACK for port in ("", ":*")],
        allowed_origins=[
            f"{scheme}://{h}{port}"
            for scheme in ("http", "https")
            for h in _LOOPBACK
            for port in ("", ":*")
        ],
    )


def mount_mcp(app: Any, memory: Memory, *, auth: bool) -> MCPServer:
    """Add `/mcp` to `app`; run `server.session_manager.run()` in the app's lifespan."""

    def resolve(ctx: Context) -> Memory:
        if not auth:
            return memory
        request = ctx.request_context.request
        tenant = getattr(request, "scope", {}).get(_TENANT)
        if tenant is None:  # the gate sets it on every authenticated request
            raise ToolError("not authenticated")
        return memory.for_tenant(tenant)

    server = build_mcp_server(resolve)
    inner = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=_transport_security(auth),
    )
    endpoint = next(r.endpoint for r in inner.routes if getattr(r, "path", None) == MCP_PATH)
    app.router.routes.append(
        Route(MCP_PATH, endpoint=_KeyGate(endpoint, memory, auth), include_in_schema=False)
    )
    return server
