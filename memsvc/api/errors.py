"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}.

A memsvc error's status comes from the core's one table (`memsvc.errors.STATUS_BY_ERROR`,
re-exported here), the same table the remote clients read an error response back with.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memsvc.errors import STATUS_BY_ERROR, InvalidInput, MemsvcError, http_status

__all__ = ["STATUS_BY_ERROR", "error_response", "install_error_handlers", "memsvc_error_response"]

log = logging.getLogger(__name__)

_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "datetime"}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict | None = None,
    request: Request | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "details": details or {}}}
    if request is not None and request.url.path.startswith("/mem0/"):
        body["detail"] = message  # what mem0's client reads into its exceptions
    return JSONResponse(body, status_code=status, headers=headers)


def memsvc_error_response(exc: MemsvcError, request: Request | None = None) -> JSONResponse:
    """A memsvc error as HTTP: its status, and the header a client needs to act on it."""
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429:
        headers = {"Retry-After": str(max(1, math.ceil(exc.details.get("retry_after", 1))))}
    return error_response(status, exc.code, exc.message, exc.details, headers, request)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MemsvcError)
    async def _memsvc(req: Request, exc: MemsvcError) -> JSONResponse:
        return memsvc_error_response(exc, req)

    @app.exception_handler(RequestValidationError)
    async def _validation(req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
            # pydantic names the union branch it tried ("text.str", "text.list[str]"): drop it.
            while loc and (loc[-1] in _TYPE_TAGS or "[" in loc[-1]):
                loc.pop()
            errors.append({"field": ".".join(loc), "msg": e["msg"], "type": e.get("type")})
        first = errors[0] if errors else {"field": "", "msg": "invalid request"}
        message = f"{first['field'] or 'body'}: {first['msg']}"
        field = first["field"] or "body"
        details = {"field": field, "errors": errors}
        return memsvc_error_response(InvalidInput(message, details=details), req)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer to a body that is not JSON at all (bad UTF-8, absurd nesting):
            # the same 422 as any other malformed JSON.
            bad = InvalidInput("body: not valid JSON", details={"field": "body", "errors": []})
            return memsvc_error_response(bad)
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
