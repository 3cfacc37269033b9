"""Checks on what an import file says, field by field: the checks of `add` (memsvc/validation.py)
and the shape of records, versions and tier sources, each failing as a 422 naming the field."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from memsvc.errors import InvalidInput
from memsvc.store.precision import PRECISIONS
from memsvc.validation import (
    check_ident,
    check_importance,
    check_metadata,
    check_tags,
    check_text,
    to_utc,
)

TIERS = ("plaintext", "activation", "parametric")
STATUSES = ("active", "archived", "deleted")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _bad(field_: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field_} {message}", details={"field": field_})


def _checked(check: Callable[..., Any], value: Any, field_: str, **kw: Any) -> Any:
    """A check of `memsvc.validation`, its error naming the field as the file has it."""
    try:
        return check(value, **kw)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, details={**exc.details, "field": field_}) from None


def _int(value: Any, field_: str, *, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**63:
        raise _bad(field_, f"must be an integer of at least {least}")
    return value


def _number(value: Any, field_: str, *, least: float = -math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field_, "must be a number")
    if not math.isfinite(value) or value < least:
        raise _bad(field_, f"must be a finite number of at least {least}")
    return float(value)


def _storable(value: str, field_: str) -> str:
    """JSON may carry half a surrogate pair, which no database column can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(field_, "is not valid UTF-8") from None
    return value


def _short(value: Any, field_: str, *, most: int, choices: tuple[str, ...] = ()) -> str:
    if choices and value not in choices:
        raise _bad(field_, f"must be one of {', '.join(choices)}")
    if not isinstance(value, str) or not 0 < len(value) <= most or "\x00" in value:
        raise _bad(field_, f"must be 1-{most} characters")
    return _storable(value, field_)


def _ident(value: Any, field_: str) -> str | None:
    """A user, agent or session id, as `add` takes it."""
    ident = _checked(check_ident, value, field_, field=field_)
    return None if ident is None else _storable(ident, field_)


def _record_id(value: Any, field_: str) -> str:
    """An id as we issue them (a UUID's characters, at most 36): it names a file too."""
    if not isinstance(value, str) or not 0 < len(value) <= 36 or not set(value) <= _ID_CHARS:
        raise _bad(field_, "must be 1-36 letters, digits, - or _")
    return value


def _json_object(value: Any, field_: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(field_, "must be an object")
    return _checked(check_metadata, value, field_)


def _time(value: Any, field_: str) -> datetime | None:
    return _checked(to_utc, value, field_, field=field_)


def record_fields(rec: Any, *, max_text_bytes: int) -> dict[str, Any]:
    """The columns of a record from its exported form, each checked as `add` checks it
    (times parsed to UTC). `max_text_bytes` bounds a plaintext record's text; a tier
    record's text lists the memories it was built from, so it may be 16x longer."""
    if not isinstance(rec, dict):
        raise _bad("record", "must be an object")
    tier = _short(rec.get("tier", "plaintext"), "record.tier", most=16, choices=TIERS)
    limit = max_text_bytes if tier == "plaintext" else 16 * max_text_bytes
    entities = rec.get("entities") or []
    if not isinstance(entities, list) or not all(
        isinstance(e, str) and len(e) <= 512 and "\x00" not in e for e in entities
    ):
        raise _bad("record.entities", "must be a list of names")
    out = {
        "id": _record_id(rec.get("id"), "record.id"),
        "tier": tier,
        "kind": _short(rec.get("kind"), "record.kind", most=32),
        "content": check_text(rec.get("content"), field="record.content", max_bytes=limit),
        "source": _json_object(rec.get("source"), "record.source"),
        "user_id": _ident(rec.get("user_id"), "record.user_id"),
        "agent_id": _ident(rec.get("agent_id"), "record.agent_id"),
        "session_id": _ident(rec.get("session_id"), "record.session_id"),
        "version": _int(rec.get("version"), "record.version", least=1),
        "status": _short(rec.get("status"), "record.status", most=16, choices=STATUSES),
        "importance": _checked(check_importance, rec.get("importance"), "record.importance"),
        "strength": _number(rec.get("strength", 1.0), "record.strength", least=0.0),
        "recall_count": _int(rec.get("recall_count", 0), "record.recall_count", least=0),
        "tags": [
            _storable(t, "record.tags")
            for t in _checked(check_tags, rec.get("tags"), "record.tags")
        ],
        "entities": [_storable(e, "record.entities") for e in entities],
        "embedding_precision": _short(
            rec.get("embedding_precision", "float32"),
            "record.embedding_precision",
            most=16,
            choices=PRECISIONS,
        ),
        "meta": _json_object(rec.get("metadata"), "record.metadata"),
        "pinned": rec.get("pinned", False),
    }
    if not isinstance(out["pinned"], bool):
        raise _bad("record.pinned", "must be true or false")
    times = ("event_time", "valid_from", "valid_to", "created_at", "updated_at")
    for t in (*times, "last_recalled_at"):
        out[t] = _time(rec.get(t), f"record.{t}")
    if tier != "plaintext":
        _tier_source(out["source"], tier)
    return out


def _tier_source(source: dict[str, Any], tier: str) -> None:
    """What the tiers read from a KV cache's or an adapter's `source`, in the shapes they
    read it (`memsvc.tiers`)."""
    members = source.get("records", [])
    if not isinstance(members, list) or not all(
        isinstance(m, dict)
        and set(m) == {"id", "version"}
        and _record_id(m["id"], "record.source.records")
        and _int(m["version"], "record.source.records", least=1)
        for m in members
    ):
        raise _bad("record.source.records", "must be a list of {id, version}")
    for key in ("model_id", "tokenizer_hash", "dtype"):
        if key in source:
            _short(source[key], f"record.source.{key}", most=512)
    if tier == "activation" or "tokens" in source:
        _int(source.get("tokens"), "record.source.tokens", least=0)


def version_fields(v: Any, i: int, *, max_text_bytes: int) -> dict[str, Any]:
    """The columns of a record version from its exported form (`record_pk` left out), checked
    like the record's."""
    f = f"versions[{i}]"
    if not isinstance(v, dict):
        raise _bad(f, "must be an object")
    cause = v.get("cause_id")
    return {
        "version": _int(v.get("version"), f"{f}.version", least=1),
        "change": _short(v.get("change"), f"{f}.change", most=16),
        "content": check_text(v.get("content"), field=f"{f}.content", max_bytes=max_text_bytes),
        "kind": _short(v.get("kind"), f"{f}.kind", most=32),
        "status": _short(v.get("status"), f"{f}.status", most=16, choices=STATUSES),
        "tags": [
            _storable(t, f"{f}.tags") for t in _checked(check_tags, v.get("tags"), f"{f}.tags")
        ],
        "importance": _checked(check_importance, v.get("importance"), f"{f}.importance"),
        "event_time": _time(v.get("event_time"), f"{f}.event_time"),
        "valid_from": _time(v.get("valid_from"), f"{f}.valid_from"),
        "valid_to": _time(v.get("valid_to"), f"{f}.valid_to"),
        "meta": _json_object(v.get("metadata"), f"{f}.metadata"),
        "changed_at": _time(v.get("changed_at"), f"{f}.changed_at") or _required(f"{f}.changed_at"),
        "cause_id": None if cause is None else _record_id(cause, f"{f}.cause_id"),
    }


def _required(field_: str) -> Any:
    raise _bad(field_, "is required")


# ---- the import ------------------------------------------------------------------------------


def _b64(text: str, field_: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(field_, "is not valid base64") from None
