"""Files of the activation and parametric tiers: KV caches and LoRA adapters as safetensors.

One file per tier record, at `<root>/<cube id>/<record id>.safetensors`. The path is always
derived from the record's own cube id and record id, both issued by us: never from a path
kept in a row or carried by an upload, so no record can name another cube's file (a
read-only share recipient once exported and unlinked an owner's file that way).

Never pickle: safetensors holds tensors and a str->str header only, so a file from
elsewhere cannot run code. A write goes to a uniquely named temporary file in the same
folder (created 0600; folders 0700), is fsynced, renamed over the target and the folder
fsynced, so a crash leaves the old file or the new one, never half of one, and two writers
never share a temporary. The database row is the truth: a file without an active row, a
temporary left by a crash, or a folder of a deleted cube is an orphan that `sweep` and
`sweep_cubes` remove once old enough not to belong to a write still in progress.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BlobError", "BlobStore", "Staged"]

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REL = re.compile(r"(?P<cube>[^/]+)/(?P<record>[^/]+)\.safetensors")
SUFFIX = ".safetensors"
# An import writes a cube's files inside a transaction that may run for many minutes: a
# folder with no cube row is left alone while any of its files is younger than this.
CUBE_ORPHAN_AGE_S = 3600.0


class BlobError(RuntimeError):
    """A tier file is missing, unreadable, was written for something else, or its name
    is not one of ours."""


@dataclass(frozen=True)
class Staged:
    """A complete, fsynced file waiting under a temporary name for `commit`."""

    tmp: Path
    dest: Path
    size: int


def _check(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise BlobError(f"unsafe {what} {value!r} for a tier file")
    return value


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- names ------------------------------------------------------------------------------

    def relpath(self, cube_id: str, record_id: str) -> str:
        """The file's name under the root, for display (`source["blob"]`); never read back
        to find a file."""
        return f"{_check(cube_id, 'cube id')}/{_check(record_id, 'record id')}{SUFFIX}"

    def path_for(self, cube_id: str, record_id: str) -> Path:
        """The one place the file of record `record_id` of cube `cube_id` may be."""
        return self.root / self.relpath(cube_id, record_id)

    def _folder(self, cube_id: str) -> Path:
        folder = self.root / _check(cube_id, "cube id")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # whatever the umask, or an older release, made it
        return folder

    # ---- writing ----------------------------------------------------------------------------

    def _temp(self, cube_id: str, record_id: str) -> tuple[Path, Path, int]:
        """A fresh, private temporary file beside the target: (temp, target, open fd)."""
        dest = self.path_for(cube_id, record_id)
        folder = self._folder(cube_id)
        tmp = folder / f".{record_id}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)  # whatever the umask
        return tmp, dest, fd

    def stage(
        self, cube_id: str, record_id: str, tensors: dict[str, Any], meta: dict[str, str]
    ) -> Staged:
        """Write torch tensors with a string header under a temporary name; `commit` puts
        it in place (after the row that names it is committed), `discard` drops it."""
        from safetensors.torch import save_file

        tmp, dest, fd = self._temp(cube_id, record_id)
        try:
            os.close(fd)  # safetensors writes by path; the file keeps its 0600 mode
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            return Staged(tmp, dest, tmp.stat().st_size)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise BlobError(f"cannot write tier file {dest.name}: {exc}") from exc
            raise

    def stage_bytes(self, cube_id: str, record_id: str, data: bytes) -> Staged:
        return self.stage_chunks(cube_id, record_id, [data])

    def stage_chunks(self, cube_id: str, record_id: str, chunks: Iterable[bytes]) -> Staged:
        """A whole file streamed from its parts (an import's, never all in memory). Should
        the parts fail midway (their source is bad), nothing is left and the error stands."""
        tmp, dest, fd = self._temp(cube_id, record_id)
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            return Staged(tmp, dest, size)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise BlobError(f"cannot write tier file {dest.name}: {exc}") from exc
            raise

    def commit(self, staged: Staged) -> int:
        """Rename a staged file over its target and make the rename durable."""
        try:
            os.replace(staged.tmp, staged.dest)
            _fsync_dir(staged.dest.parent)
        except OSError as exc:
            staged.tmp.unlink(missing_ok=True)
            raise BlobError(f"cannot write tier file {staged.dest.name}: {exc}") from exc
        return staged.size

    def discard(self, staged: Staged) -> None:
        staged.tmp.unlink(missing_ok=True)

    def save(
        self, cube_id: str, record_id: str, tensors: dict[str, Any], meta: dict[str, str]
    ) -> int:
        """Write a record's file at once; returns its size in bytes."""
        return self.commit(self.stage(cube_id, record_id, tensors, meta))

    def save_bytes(self, cube_id: str, record_id: str, data: bytes) -> int:
        """A record's file from bytes that are a whole file (an import's)."""
        return self.commit(self.stage_bytes(cube_id, record_id, data))

    def save_chunks(self, cube_id: str, record_id: str, chunks: Iterable[bytes]) -> int:
        """A record's file from the parts of an upload, written as they arrive: a tier file
        may be larger than one request should hold in memory. Should `chunks` raise, no
        file is left (an older one stays whole). Returns the size."""
        return self.commit(self.stage_chunks(cube_id, record_id, chunks))

    # ---- reading ----------------------------------------------------------------------------

    def _existing(self, cube_id: str, record_id: str) -> Path:
        p = self.path_for(cube_id, record_id)
        if not p.is_file():
            raise BlobError(f"tier file of {record_id} is missing")
        return p

    def load(self, cube_id: str, record_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(tensors, header) of a record's file."""
        from safetensors import safe_open

        p = self._existing(cube_id, record_id)
        try:
            with safe_open(str(p), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118
        except Exception as exc:  # a truncated or foreign file
            raise BlobError(f"tier file of {record_id} is unreadable: {exc}") from exc

    def header(self, cube_id: str, record_id: str) -> dict[str, str]:
        """A record's file's header alone (no tensor is read)."""
        from safetensors import safe_open

        p = self._existing(cube_id, record_id)
        try:
            with safe_open(str(p), framework="pt") as fh:
                return dict(fh.metadata() or {})
        except Exception as exc:
            raise BlobError(f"tier file of {record_id} is unreadable: {exc}") from exc

    def load_bytes(self, cube_id: str, record_id: str) -> bytes:
        return self._existing(cube_id, record_id).read_bytes()

    def has(self, cube_id: str, record_id: str) -> bool:
        return self.path_for(cube_id, record_id).is_file()

    def delete(self, cube_id: str, record_id: str) -> bool:
        try:
            self.path_for(cube_id, record_id).unlink()
            return True
        except FileNotFoundError:
            return False

    # ---- the same by relative path, for callers that still hold one ---------------------------
    # The path is parsed back into its two ids and derived again, so it cannot leave the
    # root; it can still name another cube, so callers with a record at hand use the id
    # methods above.

    def _ids(self, rel: str) -> tuple[str, str]:
        m = _REL.fullmatch(rel) if isinstance(rel, str) else None
        if m is None:
            raise BlobError(f"not a tier file name: {rel!r}")
        return _check(m["cube"], "cube id"), _check(m["record"], "record id")

    def write(self, rel: str, tensors: dict[str, Any], meta: dict[str, str]) -> int:
        return self.save(*self._ids(rel), tensors, meta)

    def write_bytes(self, rel: str, data: bytes) -> int:
        return self.save_bytes(*self._ids(rel), data)

    def read(self, rel: str) -> tuple[dict[str, Any], dict[str, str]]:
        return self.load(*self._ids(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.load_bytes(*self._ids(rel))

    def exists(self, rel: str) -> bool:
        try:
            return self.has(*self._ids(rel))
        except BlobError:
            return False

    def remove(self, rel: str | None) -> bool:
        return bool(rel) and self.delete(*self._ids(str(rel)))

    # ---- orphans ----------------------------------------------------------------------------

    def sweep(self, cube_id: str, keep: Iterable[str], *, min_age_s: float = 300.0) -> int:
        """Remove the files of a cube that no active record (ids in `keep`) owns: left by a
        crash between the file and the database, temporaries of a write that died, or an
        eviction that died midway. Young files may belong to a write whose transaction is
        still open, so they stay."""
        folder = self.root / _check(cube_id, "cube id")
        if not folder.is_dir():
            return 0
        wanted = {f"{rid}{SUFFIX}" for rid in keep}
        removed = 0
        now = time.time()
        for f in folder.iterdir():
            try:
                st = f.lstat()
            except FileNotFoundError:
                continue
            if f.name in wanted or now - st.st_mtime < min_age_s:
                continue
            if f.is_dir() and not f.is_symlink():
                continue  # nothing of ours; left for a person to look at
            f.unlink(missing_ok=True)
            removed += 1
        return removed

    def sweep_cubes(self, live: Iterable[str], *, min_age_s: float = CUBE_ORPHAN_AGE_S) -> int:
        """Remove the folders of cubes that no longer exist (a crash between deleting the
        cube's row and its files), unless any file in one is younger than `min_age_s`.
        Returns the files removed."""
        if not self.root.is_dir():
            return 0
        alive = set(live)
        removed = 0
        now = time.time()
        for folder in self.root.iterdir():
            if folder.name in alive or not folder.is_dir() or folder.is_symlink():
                continue
            if not _SAFE.fullmatch(folder.name):
                continue
            files = list(folder.iterdir())
            ages = [folder.stat().st_mtime, *(f.lstat().st_mtime for f in files)]
            if any(now - t < min_age_s for t in ages):
                continue
            if any(f.is_dir() and not f.is_symlink() for f in files):
                continue
            for f in files:
                f.unlink(missing_ok=True)
                removed += 1
            try:
                folder.rmdir()
            except OSError:  # a file arrived meanwhile: the next sweep decides
                continue
        return removed

    def drop_cube(self, cube_id: str) -> None:
        """Every file of a deleted cube, temporaries included."""
        folder = self.root / _check(cube_id, "cube id")
        if folder.is_dir():
            for f in folder.iterdir():
                if not f.is_dir() or f.is_symlink():
                    f.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # something not ours is in it: left too
                folder.rmdir()
