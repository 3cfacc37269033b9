"""Files of the activation and parametric tiers: KV caches and LoRA adapters as safetensors.

One file per tier record, at `<root>/<cube id>/<record id>.safetensors`; the record keeps
the relative path. Never pickle: safetensors holds tensors and a str->str header only, so a
file from elsewhere cannot run code. Writes go to a temporary file, are fsynced and renamed,
so a crash leaves the old file or the new one, never half of one. The database row is the
truth: a file without an active row is an orphan that `sweep` removes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["BlobError", "BlobStore"]

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BlobError(RuntimeError):
    """A tier file is missing, unreadable or was written for something else."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def relpath(self, cube_id: str, record_id: str) -> str:
        if not (_SAFE.match(cube_id) and _SAFE.match(record_id)):
            raise BlobError(f"unsafe blob name {cube_id!r}/{record_id!r}")
        return f"{cube_id}/{record_id}.safetensors"

    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents:
            raise BlobError(f"blob path {rel!r} leaves the tier folder")
        return p

    def write(self, rel: str, tensors: dict[str, Any], meta: dict[str, str]) -> int:
        """Save torch tensors with a string header; returns the file's size in bytes."""
        from safetensors.torch import save_file

        dest = self.path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        return dest.stat().st_size

    def write_bytes(self, rel: str, data: bytes) -> int:
        dest = self.path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        return len(data)

    def read(self, rel: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(tensors, header) of a tier file."""
        from safetensors import safe_open

        p = self.path(rel)
        if not p.exists():
            raise BlobError(f"tier file {rel} is missing")
        try:
            with safe_open(str(p), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118
        except Exception as exc:  # a truncated or foreign file
            raise BlobError(f"tier file {rel} is unreadable: {exc}") from exc

    def read_bytes(self, rel: str) -> bytes:
        p = self.path(rel)
        if not p.exists():
            raise BlobError(f"tier file {rel} is missing")
        return p.read_bytes()

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def remove(self, rel: str | None) -> bool:
        if not rel:
            return False
        try:
            self.path(rel).unlink()
            return True
        except FileNotFoundError:
            return False

    def sweep(self, cube_id: str, keep: Iterable[str], *, min_age_s: float = 300.0) -> int:
        """Remove the files of a cube that no active record names (left by a crash between
        the file and the database, or by an eviction that died midway). Young files may
        belong to a write whose transaction is still open, so they stay."""
        folder = self.root / cube_id
        if not folder.is_dir():
            return 0
        wanted = set(keep)
        removed = 0
        now = time.time()
        for f in folder.iterdir():
            if f"{cube_id}/{f.name}" not in wanted and now - f.stat().st_mtime >= min_age_s:
                f.unlink(missing_ok=True)
                removed += 1
        return removed

    def drop_cube(self, cube_id: str) -> None:
        folder = self.root / cube_id
        if folder.is_dir():
            for f in folder.iterdir():
                f.unlink(missing_ok=True)
            folder.rmdir()
