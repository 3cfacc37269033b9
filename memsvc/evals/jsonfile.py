"""Reading a benchmark's JSON file: one place for the missing-file and bad-JSON errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_json_list"]


def read_json_list(path: Path, error: type[ValueError], what: str) -> list[Any]:
    """The non-empty JSON list in `path`, or `error` naming the problem."""
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise error(f"{path}: expected a non-empty JSON list of {what}")
    return raw
