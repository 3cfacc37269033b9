"""Exceptions raised by memsvc, the same from the embedded SDK and the remote client.

    MemsvcError
    ├── NotFound            a cube or record does not exist (or is not visible to you)
    │   ├── CubeNotFound
    │   └── RecordNotFound
    ├── InvalidInput        the request itself is wrong: empty text, bad k, bad UTF-8...
    │   └── PayloadTooLarge a request body over the configured limit
    ├── Conflict            the request clashes with existing state (duplicate cube name...)
    │   ├── IdempotencyKeyReused  an add's idempotency key was used for another request
    │   └── DuplicateRecord       the cube refuses exact duplicates; `details["id"]` is it
    ├── AuthError           missing, bad or revoked credentials
    ├── PermissionDenied    known caller, but not allowed (writing to a cube shared read-only)
    └── StorageError        the database or an index file failed underneath

`store/` translates SQLAlchemy and FAISS failures into these at its boundary, so callers
never see a backend exception.

`STATUS_BY_ERROR` below is the one table of error class <-> HTTP status: the server answers
with `http_status(exc)` (memsvc/api/errors.py) and both remote clients raise
`error_class(code, status)` (memsvc/client/), so an error crosses HTTP as the same class.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "STATUS_BY_ERROR",
    "AuthError",
    "Busy",
    "Conflict",
    "CubeNotFound",
    "DuplicateRecord",
    "IdempotencyKeyReused",
    "InvalidInput",
    "MemsvcError",
    "ModelUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RecordNotFound",
    "StorageError",
    "error_class",
    "http_status",
]


class MemsvcError(Exception):
    """Base of every memsvc error; `code` is stable and travels over HTTP."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(MemsvcError):
    code = "not_found"


class CubeNotFound(NotFound):
    code = "cube_not_found"


class RecordNotFound(NotFound):
    code = "record_not_found"


class InvalidInput(MemsvcError):
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class Conflict(MemsvcError):
    code = "conflict"


class IdempotencyKeyReused(Conflict):
    """The idempotency key was first used for a different add (409): a retry must repeat
    its request exactly, and a new request needs a new key."""

    code = "idempotency_key_reused"


class DuplicateRecord(Conflict):
    """The cube refuses exact duplicates and an active record already holds this text for
    the same user and session (409); `details["id"]` is that record."""

    code = "duplicate_record"


class AuthError(MemsvcError):
    code = "unauthorized"


class RateLimited(MemsvcError):
    """Too many requests for this API key; `details["retry_after"]` says how long to wait."""

    code = "rate_limited"


class Busy(RateLimited):
    """The local LM has more work queued than it may hold (429 with Retry-After, as a rate
    limit is): a request thread is never parked behind an unbounded queue."""

    code = "busy"


class PermissionDenied(MemsvcError):
    code = "forbidden"


class StorageError(MemsvcError):
    code = "storage_error"


class ModelUnavailable(StorageError):
    """The local LM of the activation and parametric tiers is missing or failed to load."""

    code = "model_unavailable"


# The one table. A subclass answers with its nearest listed ancestor's status
# (RecordNotFound -> 404, ModelUnavailable -> 503); a status reads back as the class listed
# for it, unless the response names a more precise class by its `code`.
STATUS_BY_ERROR: dict[type[MemsvcError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    PayloadTooLarge: 413,
    Conflict: 409,
    AuthError: 401,
    PermissionDenied: 403,
    RateLimited: 429,
    StorageError: 503,
}
_ERROR_BY_STATUS: dict[int, type[MemsvcError]] = {
    **{status: cls for cls, status in STATUS_BY_ERROR.items()},
    400: InvalidInput,  # a request the HTTP layer itself could not read
}


def _tree(cls: type[MemsvcError]) -> list[type[MemsvcError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


def http_status(exc: MemsvcError | type[MemsvcError]) -> int:
    """The HTTP status an error answers with (500 for one outside the table)."""
    cls = exc if isinstance(exc, type) else type(exc)
    return next((STATUS_BY_ERROR[c] for c in cls.__mro__ if c in STATUS_BY_ERROR), 500)


def error_class(code: str | None, status: int) -> type[MemsvcError]:
    """The class an error response stands for: by its `code`, else by its status."""
    by_code = {c.code: c for c in _tree(MemsvcError)}
    return by_code.get(code or "") or _ERROR_BY_STATUS.get(status, MemsvcError)
