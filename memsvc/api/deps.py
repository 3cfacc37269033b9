"""Typed dependencies: routes declare what they need by annotation.

`TenantMemory` authenticates the request (Bearer API key -> tenant) and hands the route a
`Memory` handle that sees only that tenant's cubes and what was shared with it.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memsvc import Memory, Settings, tracing
from memsvc.errors import AuthError, RateLimited

__all__ = [
    "AppSettings",
    "RootMemory",
    "TenantMemory",
    "api_key",
    "authorize",
    "check_rate",
    "is_operator",
    "require_operator",
]

_bearer = HTTPBearer(auto_error=False, description="An API key from `memsvc keys create`.")


async def get_root_memory(request: Request) -> Memory:
    return request.app.state.memory


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RootMemory = Annotated[Memory, Depends(get_root_memory)]
AppSettings = Annotated[Settings, Depends(get_settings)]


async def get_tenant_memory(
    memory: RootMemory,
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> Memory:
    if not settings.auth:
        return memory
    if credentials is None:
        header = request.headers.get("authorization")
        if header:
            raise AuthError("Authorization header must be 'Bearer <key>'")
        raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
    return memory.for_tenant(await authorize(memory, credentials.credentials))


def api_key(header: str | None, schemes: tuple[str, ...] = ("bearer",)) -> str | None:
    """The key of an `Authorization: <scheme> <key>` header, if the scheme is one of these."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() in schemes and token.strip() else None


async def authorize(memory: Memory, key: str) -> str:
    """The key's tenant, once the key is valid (`AuthError`) and within its rate
    (`RateLimited`). Inline, not in a pool thread: a cached key is a dict lookup, a new one
    one indexed read."""
    with tracing.span("auth"):
        tenant = memory.keys.authenticate(key)
        await check_rate(memory, key)
    return tenant


async def check_rate(memory: Memory, key: str) -> None:
    """`RateLimited` when `key` is over its rate. A shared limiter asks the database, so it
    runs in a pool thread: the event loop keeps serving other requests meanwhile."""
    limiter = memory.rate_limiter
    if not limiter.enabled:
        return
    if limiter.blocking:
        wait = await anyio.to_thread.run_sync(limiter.take, key)
    else:
        wait = limiter.take(key)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {limiter.rate:g} requests/s for this key: retry in {wait:.2f} s",
            details={"retry_after": round(wait, 3)},
        )


TenantMemory = Annotated[Memory, Depends(get_tenant_memory)]


def _operator_token(settings: Settings) -> str | None:
    token = settings.operator_token
    return token.get_secret_value() if token is not None and token.get_secret_value() else None


def is_operator(request: Request, settings: Settings) -> bool:
    """Whether the caller may see figures that span tenants (cube ids, record counts): it
    sends the operator token; or none is set and the server runs without API keys, where the
    one local user is the operator. A tenant's API key is never enough."""
    token = _operator_token(settings)
    if token is None:
        return not settings.auth
    given = api_key(request.headers.get("authorization"))
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def require_operator(request: Request, settings: Settings) -> bool:
    """`is_operator`, but with an operator token set anyone else gets a 401; without one the
    answer is False and the route shows only tenant-free figures."""
    if is_operator(request, settings):
        return True
    if _operator_token(settings) is not None:
        raise AuthError("operator token required: send 'Authorization: Bearer <token>'")
    return False
