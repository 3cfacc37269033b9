"""Checks on caller input, raising `InvalidInput` with a message that names the problem."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from memsvc.errors import InvalidInput
from memsvc.models import Message

__all__ = [
    "brief",
    "check_cube_name",
    "check_idempotency_key",
    "check_ident",
    "check_importance",
    "check_k",
    "check_message",
    "check_metadata",
    "check_tags",
    "check_text",
    "decode_cursor",
    "encode_cursor",
    "to_utc",
]

CUBE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_text(text: Any, *, field: str, max_bytes: int) -> str:
    """Text must be valid UTF-8, non-blank and at most `max_bytes` bytes once encoded."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{field} is not valid UTF-8 (byte {exc.start})", details={"field": field}
            ) from exc
    if not isinstance(text, str):
        raise InvalidInput(f"{field} must be a string", details={"field": field})
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{field} is not valid UTF-8 (lone surrogate at {exc.start})", details={"field": field}
        ) from exc
    if not text.strip():
        raise InvalidInput(f"{field} is empty", details={"field": field})
    if "\x00" in text:  # PostgreSQL cannot store NUL in text; refuse it everywhere alike
        raise InvalidInput(f"{field} contains a NUL character", details={"field": field})
    if size > max_bytes:
        raise InvalidInput(
            f"{field} is {size} bytes; the limit is {max_bytes}",
            details={"field": field, "bytes": size, "limit": max_bytes},
        )
    return text


def check_ident(value: Any, *, field: str, required: bool = False) -> str | None:
    """user/agent/session ids: 1-256 printable characters."""
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required", details={"field": field})
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", details={"field": field})
    if len(value) > 256 or _CONTROL.search(value):
        raise InvalidInput(
            f"{field} must be at most 256 printable characters", details={"field": field}
        )
    return value


def check_idempotency_key(key: Any, *, field: str = "idempotency_key") -> str | None:
    """An add's idempotency key: 1-255 visible ASCII characters (a UUID fits)."""
    if key is None:
        return None
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput(
            f"{field} must be 1-255 visible ASCII characters (no spaces), e.g. a UUID",
            details={"field": field},
        )
    return key


def check_cube_name(name: Any) -> str:
    if not isinstance(name, str) or not CUBE_NAME.match(name):
        raise InvalidInput(
            "cube name must be 1-128 characters of letters, digits and . _ @ : - "
            "starting with a letter or digit",
            details={"field": "cube", "value": str(name)[:200]},
        )
    return name


def check_k(k: Any, *, max_k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidInput("k must be an integer", details={"field": "k"})
    if k <= 0 or k > max_k:
        raise InvalidInput(f"k must be between 1 and {max_k}; got {k}", details={"field": "k"})
    return k


def to_utc(value: Any, *, field: str) -> datetime | None:
    """Accept a datetime (naive means UTC), an ISO 8601 string or a Unix timestamp."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a datetime", details={"field": field})
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidInput(f"{field} is out of range", details={"field": field}) from exc
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(
                f"{field} is not an ISO 8601 datetime: {value!r}", details={"field": field}
            ) from exc
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime", details={"field": field})
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def brief(exc: Exception, *, prefix: str) -> str:
    """One line per pydantic error ("prefix.field: message") instead of its long report."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{prefix}: {exc}"
    parts = []
    for e in errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{prefix}.{loc}: {e['msg']}" if loc else f"{prefix}: {e['msg']}")
    return "; ".join(parts)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInput(
            "metadata must be an object with string keys", details={"field": "metadata"}
        )
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"metadata must be JSON-serializable: {exc}", details={"field": "metadata"}
        ) from exc
    if "\\u0000" in encoded and _has_nul(metadata):  # PostgreSQL cannot store NUL in JSON
        raise InvalidInput("metadata contains a NUL character", details={"field": "metadata"})
    return dict(metadata)


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(
        isinstance(t, str) and t.strip() and "\x00" not in t for t in tags
    ):
        raise InvalidInput(
            "tags must be a list of non-empty strings without NUL", details={"field": "tags"}
        )
    return sorted(set(tags))


def check_importance(importance: Any) -> float:
    if importance is None:
        return 0.5
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        raise InvalidInput("importance must be a number", details={"field": "importance"})
    if not 0.0 <= importance <= 1.0:
        raise InvalidInput("importance must be within [0, 1]", details={"field": "importance"})
    return float(importance)


def check_message(raw: Any, i: int) -> Message:
    if isinstance(raw, Message):
        return raw
    if not isinstance(raw, dict):
        raise InvalidInput(f"messages[{i}] must be an object", details={"field": f"messages[{i}]"})
    data = dict(raw)
    if "speaker" in data and "name" not in data:
        data["name"] = data.pop("speaker")
    try:
        msg = Message.model_validate(data)
    except ValueError as exc:
        raise InvalidInput(
            brief(exc, prefix=f"messages[{i}]"), details={"field": f"messages[{i}]"}
        ) from exc
    if _has_nul(msg.name) or _has_nul(msg.metadata):
        raise InvalidInput(
            f"messages[{i}] contains a NUL character", details={"field": f"messages[{i}]"}
        )
    return msg


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": pk}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor from `encode_cursor` names. Anything else is a 422, never a
    database error: a row pk fits in 64 bits, and a cursor we made is short."""
    if cursor is None:
        return 0
    try:
        if not isinstance(cursor, str) or len(cursor) > 100:
            raise ValueError  # a long one could only be deeply nested JSON or a huge number
        pad = "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(cursor + pad))["after"]
        if type(after) is not int or not 0 <= after < 2**63:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidInput("invalid cursor", details={"field": "cursor"}) from exc
