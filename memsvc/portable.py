"""The portable cube file (`.memcube`): gzip-compressed JSON lines.

    {"type": "header", "format": "memsvc-cube", "format_version": 2, "cube": {...},
     "embedding": {"model": ..., "dim": ..., "dtype": "float32"}, "exported_at": ...}
    {"type": "record", "record": {...}, "versions": [...], "embedding": "<base64 float32>",
     "keys": "<base64 float32, one row per sentence key>", "blob_bytes": N}
    {"type": "versions", "id": "<record id>", "versions": [...]}
    {"type": "blob", "id": "<record id>", "data": "<base64, at most BLOB_PART_BYTES>"}
    {"type": "entity", "key": 7, "entity": {...}}
    {"type": "edge", "edge": {..., "src": ["record", "<record id>"], "dst": ["entity", 7]}}
    {"type": "footer", "records": N, "entities": E, "edges": M}

Lines stream, so a cube of any size exports and imports in bounded memory; the footer's counts
catch a truncated file. Records keep their ids, versions, times and embeddings.

A file is input from a stranger, and gzip turns a few hundred kilobytes into gigabytes: the
reader never holds more than one line, a line is refused past `MAX_LINE_BYTES` before it is
parsed, the whole file past a caller's total, and a line nesting deeper than `MAX_DEPTH`
is refused naming the field. So that every line a memsvc writes stays far below that bound,
format 2 carries a record's history beyond `LINE_BUDGET` bytes in `versions` lines and its
tier file in `blob` lines of at most `BLOB_PART_BYTES` each, after the record's own line
(format 1 put them all in the record's line; such files still read, within the bound).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.errors import InvalidInput
from memsvc.store.precision import decode_stored

__all__ = [
    "BLOB_PART_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "LINE_BUDGET",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "Items",
    "decode_vector",
    "encode_vector",
    "field_name",
    "read_lines",
    "too_deep",
    "write",
]

FORMAT = "memsvc-cube"
FORMAT_VERSION = 2
READABLE = (1, 2)
MAX_LINE_BYTES = 16 << 20  # a record with its first versions, or one part of a tier file
MAX_DEPTH = 64  # JSON nesting of one line (metadata holds the deepest legitimate values)
BLOB_PART_BYTES = 1 << 20
LINE_BUDGET = 4 << 20  # what a writer puts on one line where it can choose
_ITEMS = {1: ("record", "entity", "edge"), 2: ("record", "entity", "edge", "versions", "blob")}


def encode_vector(vec: bytes | None) -> str | None:
    return None if vec is None else base64.b64encode(vec).decode("ascii")


def decode_vector(text: str | None, dim: int, precision: str = "float32") -> bytes | None:
    """The stored bytes of an embedding (float32, or int8 / 1-bit for a faded record)."""
    if text is None:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
        decode_stored(raw, precision, dim)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput(
            f"bad embedding: {exc} (the file says {dim} dimensions)",
            details={"field": "embedding"},
        ) from None
    return raw


def decode_keys(text: Any, dim: int, max_keys: int) -> bytes:
    """A record's sentence keys: 1 to `max_keys` finite float32 rows of `dim`."""
    try:
        if not isinstance(text, str):
            raise TypeError("must be a base64 string")
        raw = base64.b64decode(text, validate=True)
        row = 4 * dim
        if dim <= 0 or not raw or len(raw) % row or len(raw) // row > max_keys:
            raise ValueError(
                f"{len(raw)} bytes is not 1 to {max_keys} float32 rows of {dim} dimensions"
            )
        if not np.isfinite(np.frombuffer(raw, dtype=np.float32)).all():
            raise ValueError("a value is not a finite number")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput(f"bad sentence keys: {exc}", details={"field": "keys"}) from None
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
                if line["type"] in _PLURAL:
                    counts[_PLURAL[line["type"]]] += 1
                fh.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
            fh.write(json.dumps({"type": "footer", **counts}) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


# ---- reading ---------------------------------------------------------------------------------


def field_name(path: list[str | int]) -> str:
    """`record.metadata` for ["record", "metadata", "a", 0]: the item's field, by the first
    two names of its path (with the list positions between them)."""
    out, names = "", 0
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
            continue
        if names == 2:
            break
        out += f".{p}" if out else p
        names += 1
    return out or "line"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> list[str | int] | None:
    """The path of the first container nested deeper than `limit` in a parsed value, or
    None; iterative, so a deep value cannot exhaust the stack."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            items: Iterable[tuple[str | int, Any]] = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if len(path) >= limit:
            return path
        stack.extend((v, [*path, k]) for k, v in items if isinstance(v, dict | list))
    return None


_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"\s*:|"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def _deep_path(raw: bytes, limit: int) -> list[str | int] | None:
    """`too_deep` on text that is too deep to parse at all: scan its brackets and keys."""
    stack: list[list[Any]] = []  # per open container: [is_list, key or position]
    for m in _TOKEN.finditer(raw):
        tok = m.group()
        if tok[:1] == b'"':
            if tok.endswith(b":") and stack:
                try:
                    stack[-1][1] = json.loads(tok[:-1].rstrip())
                except ValueError:
                    stack[-1][1] = "?"
        elif tok in (b"[", b"{"):
            if len(stack) >= limit:
                return [key for _, key in stack]
            stack.append([tok == b"[", 0 if tok == b"[" else "?"])
        elif tok in (b"]", b"}"):
            if stack:
                stack.pop()
        elif stack and stack[-1][0]:  # a comma in a list
            stack[-1][1] += 1
    return None


def _parse(raw: bytes, n: int) -> Any:
    """One line as JSON, refused (naming the field) when malformed or nested too deep."""
    try:
        value = json.loads(raw)
    except RecursionError:
        path = _deep_path(raw, MAX_DEPTH) or []
        value = None
    except ValueError as exc:
        raise InvalidInput(
            f"line {n} is not valid JSON: {exc}", details={"field": "line", "line": n}
        ) from None
    else:
        path = too_deep(value)
    if path is not None:
        field = field_name(path)
        raise InvalidInput(
            f"line {n}: {field} nests deeper than {MAX_DEPTH} levels",
            details={"field": field, "line": n, "limit": MAX_DEPTH},
        )
    return value


class _Lines:
    """Decompressed lines, each bounded before it is held whole, and their running total."""

    def __init__(self, fh: gzip.GzipFile, path: Path, max_line: int, max_total: int | None):
        self.fh, self.path, self.max_line, self.max_total = fh, path, max_line, max_total
        self.n = 0
        self.total = 0

    def next(self) -> bytes:
        self.n += 1
        try:
            raw = self.fh.readline(self.max_line + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidInput(f"{self.path.name} is damaged: {exc}") from exc
        self.total += len(raw)
        if len(raw) > self.max_line:
            raise InvalidInput(
                f"line {self.n} is longer than {self.max_line} bytes once decompressed",
                details={"field": "line", "line": self.n, "limit": self.max_line},
            )
        if self.max_total is not None and self.total > self.max_total:
            raise InvalidInput(
                f"{self.path.name} decompresses to more than {self.max_total} bytes",
                details={"field": "file", "limit": self.max_total},
            )
        return raw


def read_lines(
    path: Path,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_total_bytes: int | None = None,
) -> tuple[dict[str, Any], Items]:
    """(header, the remaining lines); the iterator raises InvalidInput on a bad, cut or
    oversized file. Every item it yields is a dict with a known `type`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no cube file at {path}")
    fh = gzip.open(path, "rb")  # noqa: SIM115 - handed to the iterator
    src = _Lines(fh, path, max_line_bytes, max_total_bytes)
    try:
        header = _parse(src.next(), 1)
    except InvalidInput as exc:
        fh.close()
        raise InvalidInput(f"{path} is not a memsvc cube file: {exc.message}") from None
    except BaseException:
        fh.close()
        raise
    if not isinstance(header, dict):
        header = {}
    if header.get("type") != "header" or header.get("format") != FORMAT:
        fh.close()
        raise InvalidInput(f"{path} is not a memsvc cube file")
    version = header.get("format_version")
    if version not in READABLE:
        fh.close()
        raise InvalidInput(f"unsupported cube file version {version!r}")
    kinds = _ITEMS[version]

    def lines() -> Iterator[dict[str, Any]]:
        counts = {"records": 0, "entities": 0, "edges": 0}
        footer = None
        while raw := src.next():
            item = _parse(raw, src.n)
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "footer":
                footer = item
                break
            if kind not in kinds:
                raise InvalidInput(
                    f"line {src.n}: unknown item type {kind!r}",
                    details={"field": "type", "line": src.n},
                )
            if kind in _PLURAL:
                counts[_PLURAL[kind]] += 1
            yield item
        if footer is None:
            raise InvalidInput(f"{path} is truncated (no footer)")
        expected = {k: footer.get(k) for k in counts}
        if expected != counts:
            raise InvalidInput(f"{path} is incomplete: footer says {expected}, read {counts}")

    return header, Items(lines(), fh)


class Items(Iterator[dict[str, Any]]):
    """The items of a cube file; `close` closes the file, read to the end or not."""

    def __init__(self, gen: Iterator[dict[str, Any]], fh: gzip.GzipFile) -> None:
        self._gen, self._fh = gen, fh

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self._gen)
        except BaseException:
            self._fh.close()
            raise

    def close(self) -> None:
        self._fh.close()
