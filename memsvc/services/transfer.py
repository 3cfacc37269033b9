"""Export and import of a cube as one portable file (`memsvc.portable` owns the format).

Export streams every record (with its versions, embedding and, for an activation or
parametric record, its file), entity and edge of a cube from one read transaction.

A file to import is input from a stranger. Its records pass the checks of `add`; a tier
file's path comes from the record's own cube and id, never from the file, and the bytes in
the file are the only way a tier file arrives; an edge joins nodes of the file only (a
topic end names a node of some other database, so that edge is dropped: the next
maintenance builds the cube's topic tree); an id another tenant's record already has is
replaced by a new one (saying nothing of that record), while one of the caller's own is a
`Conflict`. The import reads, checks and embeds a batch outside any transaction, then
writes it in a short one into a staging cube that belongs to no tenant (`STAGING_TENANT`),
so other writers wait for one batch at most, never for the embedding, and no one sees a
half-imported cube; the last transaction hands the cube to the caller. All or nothing:
should anything fail, the staging cube and its files are deleted, and one left by a crash
is deleted by a later import once it has not grown for `STALE_S`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from memsvc import portable
from memsvc._convert import record_model, version_model
from memsvc.errors import Conflict, InvalidInput
from memsvc.models import Cube
from memsvc.services.cubes import CubeService
from memsvc.services.import_checks import _checked, _ident, _storable, record_fields, version_fields
from memsvc.services.importer import _Import
from memsvc.store.blobs import BlobError, BlobStore
from memsvc.store.data import CubeData, RecordData, new_id
from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict
from memsvc.store.index_spec import is_index_spec
from memsvc.validation import (
    check_cube_name,
    check_metadata,
)

__all__ = ["STAGING_TENANT", "STALE_S", "TransferService", "record_fields", "version_fields"]

Progress = Callable[[int, int | None], None]
log = logging.getLogger(__name__)

# A tenant no API key can name (names are printable), owning the cubes imports are building.
STAGING_TENANT = "\x7fimports"
STALE_S = 3600.0  # a staging cube that has not grown for this long was left by a crash
IMPORT_GROWTH = 16  # a file may decompress to this many times the upload limit


class TransferService:
    """A tenant's export and import of cubes."""

    def __init__(self, cubes: CubeService) -> None:
        self.cubes = cubes
        self.engine = cubes.engine

    def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        """Write the cube (records, versions, embeddings, entities, edges) to one file."""
        path = Path(path)
        with self.engine.db.reading() as tx:
            # the owner's only: a file carries history and deleted records a reader may not see
            row = self.cubes.find(tx, cube, write=True)
            total = sum(tx.cubes.record_counts([row.pk])[row.pk].values())
        header = {
            "format_version": portable.FORMAT_VERSION,
            "exported_at": datetime.now(UTC).isoformat(),
            "cube": {
                "id": row.id,
                "name": row.name,
                "description": row.description,
                "owner_user_id": row.owner_user_id,
                "created_at": row.created_at.isoformat(),
                "metadata": row.meta or {},
                "search_mode": row.search_mode,
                "refuse_duplicates": row.refuse_duplicates,
            },
            "embedding": {
                "model": row.embedding_model,
                "dim": row.embedding_dim,
                "dtype": "float32",
            },
            "records": total,
        }
        lines = export_lines(self.engine.db, row, total, progress, self.engine.tiers.blobs)
        return portable.write(path, header, lines)

    def import_cube(
        self,
        path: str | Path,
        *,
        cube: str | None = None,
        progress: Progress | None = None,
    ) -> Cube:
        """Load a cube file as a new cube (named `cube`, default the exported name).

        Record ids are kept, but for ids another tenant's records have (those get new
        ids); `Conflict` if the cube name or a record id already exists in this tenant.
        `InvalidInput` naming the field for anything `add` would refuse. All or nothing.
        Embeddings made by another model are redone.
        """
        engine = self.engine
        limit = IMPORT_GROWTH * engine.settings.max_import_bytes
        header, lines = portable.read_lines(Path(path), max_total_bytes=limit)
        try:
            fields = cube_fields(header, cube)
            name = fields.pop("name")
            with engine.db.reading() as tx:
                if tx.cubes.find(self.cubes.tenant_pk, name=name) is not None:
                    raise Conflict(f"cube {name!r} already exists", details={"cube": name})
            self._sweep_stale()
            staging = self._stage(fields)
            try:
                _Import(self, staging, header).run(lines, progress)
                self._hand_over(staging, name)
            except BaseException:
                try:
                    self._drop(staging)
                except Exception:  # the first error is the one to report; a later import
                    log.exception("could not remove staging cube %s", staging.id)  # sweeps
                raise
        finally:
            lines.close()
        with engine.db.reading() as tx:
            row = tx.cubes.by_pk(staging.pk)
        assert row is not None
        engine.indexes.get(row)
        return self.cubes.get_cube(row.id)

    # ---- the staging cube ------------------------------------------------------------------

    def _stage(self, fields: dict[str, Any]) -> CubeData:
        emb = self.engine.embedder
        with self.engine.db.writing() as tx:
            staging_pk = tx.tenancy.ensure(STAGING_TENANT)
            return tx.cubes.create(
                staging_pk,
                name=new_id(),
                embedding_model=emb.model_id,
                embedding_dim=emb.dim,
                created_at=self.engine.now(),
                **fields,
            )

    def _hand_over(self, staging: CubeData, name: str) -> None:
        try:
            with self.engine.db.writing() as tx:
                if tx.cubes.find(self.cubes.tenant_pk, name=name) is not None:
                    raise Conflict(f"cube {name!r} already exists", details={"cube": name})
                tx.transfer.hand_over(staging.pk, self.cubes.tenant_pk, name, self.engine.now())
        except StoreConflict as exc:  # made by a concurrent call after the check
            raise Conflict(f"cube {name!r} already exists", details={"cube": name}) from exc

    def _drop(self, staging: CubeData) -> None:
        """Delete a staging cube, its rows and its files."""
        with self.engine.db.writing() as tx:
            tx.cubes.delete(staging.pk)
        self.engine.forget_cube(staging.pk)
        self.engine.indexes.drop(staging)
        self.engine.tiers.blobs.drop_cube(staging.id)

    def _sweep_stale(self) -> None:
        """Staging cubes a crashed import left behind (no batch for `STALE_S`)."""
        before = self.engine.now() - timedelta(seconds=STALE_S)
        with self.engine.db.reading() as tx:
            staging_pk = tx.tenancy.find(STAGING_TENANT)
            stale = [] if staging_pk is None else tx.cubes.owned(staging_pk)
        for c in stale:
            if c.created_at < before:
                self._drop(c)


def cube_fields(header: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The cube's name and columns from a file's header, checked as `create_cube` does."""
    meta = header.get("cube") or {}
    if not isinstance(meta, dict):
        raise InvalidInput("the header's cube must be an object", details={"field": "cube"})
    description = meta.get("description")
    if description is not None and (not isinstance(description, str) or "\x00" in description):
        raise InvalidInput(
            "description must be text without NUL", details={"field": "cube.description"}
        )
    metadata = _checked(check_metadata, meta.get("metadata"), "cube.metadata")
    mode = meta.get("search_mode")
    return {
        "name": check_cube_name(name or meta.get("name")),
        "description": description and _storable(description, "cube.description"),
        "owner_user_id": _ident(meta.get("owner_user_id"), "cube.owner_user_id"),
        "meta": metadata,
        "search_mode": mode if is_index_spec(mode) else None,
        "refuse_duplicates": meta.get("refuse_duplicates") is True,
    }


def export_lines(
    db: Database,
    cube: CubeData,
    total: int,
    progress: Progress | None,
    blobs: BlobStore | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record (with versions and embedding, and the file of an activation or
    parametric record), entity and edge of a cube, streamed; a record's history goes on
    lines of about `LINE_BUDGET` bytes, its file in parts, so no line holds much more."""
    with db.reading() as tx:
        ids: dict[int, str] = {}
        for n, (r, embedding, keys) in enumerate(tx.transfer.records(cube.pk), start=1):
            ids[r.pk] = r.id
            rec = record_model(r, cube).model_dump(mode="json")
            versions = _lines_of(
                [version_model(r.id, v).model_dump(mode="json") for v in tx.versions.of(r.pk)]
            )
            item: dict[str, Any] = {
                "type": "record",
                "record": rec,
                "versions": versions[0] if versions else [],
                "embedding": portable.encode_vector(embedding),
            }
            if keys is not None:  # its sentences' vectors (memsvc.retrieval.sentence_keys)
                item["keys"] = portable.encode_vector(keys)
            # the file at the record's own place, whatever a row from before says
            fh = _open_file(blobs, cube, r) if blobs is not None else None
            if fh is None:
                yield item
            else:
                with fh:
                    item["blob_bytes"] = os.fstat(fh.fileno()).st_size
                    yield item
                    while part := fh.read(portable.BLOB_PART_BYTES):
                        yield {"type": "blob", "id": r.id, "data": portable.encode_vector(part)}
            for group in versions[1:]:
                yield {"type": "versions", "id": r.id, "versions": group}
            if progress:
                progress(n, total)
        keys = set()
        for e in tx.transfer.entities(cube.pk):
            keys.add(e.pk)
            yield {
                "type": "entity",
                "key": e.pk,
                "entity": {"name": e.name, "normalized": e.normalized, "type": e.type},
            }
        for e in tx.transfer.edges(cube.pk):
            ends = []
            for kind, pk in ((e.src_kind, e.src_pk), (e.dst_kind, e.dst_pk)):
                if kind == "record":
                    ends.append([kind, ids.get(pk)])
                elif kind == "entity" and pk in keys:
                    ends.append([kind, pk])
                else:  # a topic (rebuilt by maintenance), or a node of no other cube
                    ends.append([kind, None])
            if any(ref is None for _, ref in ends):
                continue
            yield {
                "type": "edge",
                "edge": {
                    "type": e.type,
                    "src": ends[0],
                    "dst": ends[1],
                    "weight": e.weight,
                    "metadata": e.meta or {},
                    "created_at": e.created_at.isoformat(),
                },
            }


def _open_file(blobs: BlobStore, cube: CubeData, r: RecordData) -> BinaryIO | None:
    """The file of an active tier record, open (so a demotion meanwhile cannot cut it)."""
    if r.tier == "plaintext" or r.status != "active":
        return None
    try:
        return blobs.path_for(cube.id, r.id).open("rb")
    except (FileNotFoundError, BlobError):
        return None


def _lines_of(versions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Versions grouped by line: about `LINE_BUDGET` bytes of JSON each, at least one."""
    out: list[list[dict[str, Any]]] = []
    size = portable.LINE_BUDGET
    for v in versions:
        n = len(json.dumps(v, default=str, ensure_ascii=False))
        if size + n > portable.LINE_BUDGET:
            out.append([])
            size = 0
        out[-1].append(v)
        size += n
    return out


# ---- checks: what `add` refuses, an import refuses -------------------------------------------
