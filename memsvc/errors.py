"""Exceptions raised by memsvc, the same from the embedded SDK and the remote client.

    MemsvcError
    ├── NotFound            a cube or record does not exist (or is not visible to you)
    │   ├── CubeNotFound
    │   └── RecordNotFound
    ├── InvalidInput        the request itself is wrong: empty text, bad k, bad UTF-8...
    │   └── PayloadTooLarge a request body over the configured limit
    ├── Conflict            the request clashes with existing state (duplicate cube name...)
    ├── AuthError           missing, bad or revoked credentials
    ├── PermissionDenied    known caller, but not allowed (writing to a cube shared read-only)
    └── StorageError        the database or an index file failed underneath

`store/` translates SQLAlchemy and FAISS failures into these at its boundary, so callers
never see a backend exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "Conflict",
    "CubeNotFound",
    "InvalidInput",
    "MemsvcError",
    "ModelUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RecordNotFound",
    "StorageError",
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


class AuthError(MemsvcError):
    code = "unauthorized"


class RateLimited(MemsvcError):
    """Too many requests for this API key; `details["retry_after"]` says how long to wait."""

    code = "rate_limited"


class PermissionDenied(MemsvcError):
    code = "forbidden"


class StorageError(MemsvcError):
    code = "storage_error"


class ModelUnavailable(StorageError):
    """The local LM of the activation and parametric tiers is missing or failed to load."""

    code = "model_unavailable"
