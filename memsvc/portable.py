"""The portable cube file (`.memcube`): gzip-compressed JSON lines.

    {"type": "header", "format": "memsvc-cube", "format_version": 1, "cube": {...},
     "embedding": {"model": ..., "dim": ..., "dtype": "float32"}, "exported_at": ...}
    {"type": "record", "record": {...}, "versions": [...], "embedding": "<base64 float32>"}
    {"type": "entity", "key": 7, "entity": {...}}
    {"type": "edge", "edge": {..., "src": ["record", "<record id>"], "dst": ["entity", 7]}}
    {"type": "footer", "records": N, "entities": E, "edges": M}

Lines stream, so a cube of any size exports and imports in bounded memory; the footer's counts
catch a truncated file. Records keep their ids, versions, times and embeddings.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from memsvc.errors import InvalidInput
from memsvc.store.precision import decode_stored

__all__ = ["FORMAT", "FORMAT_VERSION", "decode_vector", "encode_vector", "read_lines", "write"]

FORMAT = "memsvc-cube"
FORMAT_VERSION = 1


def encode_vector(vec: bytes | None) -> str | None:
    return None if vec is None else base64.b64encode(vec).decode("ascii")


def decode_vector(text: str | None, dim: int, precision: str = "float32") -> bytes | None:
    """The stored bytes of an embedding (float32, or int8 / 1-bit for a faded record)."""
    if text is None:
        return None
    raw = base64.b64decode(text)
    try:
        decode_stored(raw, precision, dim)
    except ValueError as exc:
        raise InvalidInput(f"bad embedding: {exc} (the file says {dim} dimensions)") from None
    return raw


_PLURAL = {"record": "records", "entity": "entities", "edge": "edges"}


def write(path: Path, header: dict[str, Any], lines: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Write the file atomically (tmp + rename); returns the footer counts."""
    path = Path(path)
    counts = {"records": 0, "entities": 0, "edges": 0}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            fh.write(json.dumps({"type": "header", "format": FORMAT, **header}) + "\n")
            for line in lines:
                counts[_PLURAL[line["type"]]] += 1
                fh.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
            fh.write(json.dumps({"type": "footer", **counts}) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def read_lines(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(header, the remaining lines); the iterator raises InvalidInput on a bad or cut file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no cube file at {path}")
    fh = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - handed to the iterator
    try:
        first = fh.readline()
        header = json.loads(first)
    except (OSError, EOFError, ValueError) as exc:
        fh.close()
        raise InvalidInput(f"{path} is not a memsvc cube file: {exc}") from exc
    if header.get("type") != "header" or header.get("format") != FORMAT:
        fh.close()
        raise InvalidInput(f"{path} is not a memsvc cube file")
    if header.get("format_version") != FORMAT_VERSION:
        fh.close()
        raise InvalidInput(f"unsupported cube file version {header.get('format_version')}")

    def lines() -> Iterator[dict[str, Any]]:
        counts = {"records": 0, "entities": 0, "edges": 0}
        footer = None
        with fh:
            try:
                for n, raw in enumerate(fh, start=2):
                    item = json.loads(raw)
                    kind = item.get("type")
                    if kind == "footer":
                        footer = item
                        break
                    if kind not in ("record", "entity", "edge"):
                        raise InvalidInput(f"line {n}: unknown item type {kind!r}")
                    counts[_PLURAL[kind]] += 1
                    yield item
            except (OSError, EOFError, ValueError) as exc:
                raise InvalidInput(f"{path} is damaged: {exc}") from exc
        if footer is None:
            raise InvalidInput(f"{path} is truncated (no footer)")
        expected = {k: footer.get(k) for k in counts}
        if expected != counts:
            raise InvalidInput(f"{path} is incomplete: footer says {expected}, read {counts}")

    return header, lines()
