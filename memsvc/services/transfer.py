"""Export and import of a cube as one portable file (`memsvc.portable` owns the format).

Export streams every record (with its versions, embedding and, for an activation or
parametric record, its file), entity and edge of a cube from one read transaction. Import
makes a new cube and writes the file's items into it in one write transaction: all or
nothing, the tier files it wrote removed again should that transaction fail.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memsvc import portable
from memsvc._convert import record_model, version_model
from memsvc.embedder import Embedder
from memsvc.errors import Conflict, InvalidInput
from memsvc.models import Cube
from memsvc.retrieval.analyze import embedding_text
from memsvc.services.cubes import CubeService
from memsvc.store.blobs import BlobStore
from memsvc.store.data import CubeData, RecordData
from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict
from memsvc.store.index_spec import is_index_spec
from memsvc.store.tx import Tx
from memsvc.turn_context import context_of
from memsvc.validation import check_cube_name, to_utc

__all__ = ["TransferService", "record_fields", "version_fields"]

Progress = Callable[[int, int | None], None]


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

        Record ids are kept; `Conflict` if the cube name or any record id already exists
        here. All or nothing: one transaction. Embeddings made by another model are redone.
        """
        header, lines = portable.read_lines(Path(path))
        meta = header.get("cube") or {}
        emb = header.get("embedding") or {}
        name = check_cube_name(cube or meta.get("name"))
        engine = self.engine
        embedder = engine.embedder
        same_model = emb.get("model") == embedder.model_id and emb.get("dim") == embedder.dim
        total = header.get("records")
        tenant_pk = self.cubes.tenant_pk
        with engine.db.reading() as tx:
            if tx.cubes.find(tenant_pk, name=name) is not None:
                raise Conflict(f"cube {name!r} already exists", details={"cube": name})
        written: list[str] = []
        try:
            with engine.db.writing() as tx:
                row = tx.cubes.create(
                    tenant_pk,
                    name=name,
                    description=meta.get("description"),
                    owner_user_id=meta.get("owner_user_id"),
                    meta=meta.get("metadata") or {},
                    embedding_model=embedder.model_id,
                    embedding_dim=embedder.dim,
                    search_mode=meta.get("search_mode")
                    if is_index_spec(meta.get("search_mode"))
                    else None,
                )
                import_items(
                    tx,
                    embedder,
                    row,
                    lines,
                    same_model,
                    int(emb.get("dim") or 0),
                    total,
                    progress,
                    blobs=engine.tiers.blobs,
                    written=written,
                )
        except BaseException as exc:
            for rel in written:  # nothing half-written: the files go with the transaction
                engine.tiers.blobs.remove(rel)
            if isinstance(exc, StoreConflict):
                raise Conflict(f"import clashes with existing data: {exc}") from exc
            raise
        engine.indexes.get(row)
        return self.cubes.get_cube(row.id)


def export_lines(
    db: Database,
    cube: CubeData,
    total: int,
    progress: Progress | None,
    blobs: BlobStore | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record (with versions and embedding, and the file of an activation or
    parametric record), entity and edge of a cube, streamed."""
    with db.reading() as tx:
        ids: dict[int, str] = {}
        for n, (r, embedding) in enumerate(tx.transfer.records(cube.pk), start=1):
            ids[r.pk] = r.id
            rec = record_model(r, cube).model_dump(mode="json")
            versions = [
                version_model(r.id, v).model_dump(mode="json") for v in tx.versions.of(r.pk)
            ]
            item = {
                "type": "record",
                "record": rec,
                "versions": versions,
                "embedding": portable.encode_vector(embedding),
            }
            blob = (r.source or {}).get("blob") if r.tier != "plaintext" else None
            if blob and blobs is not None and r.status == "active" and blobs.exists(blob):
                item["blob"] = portable.encode_vector(blobs.read_bytes(blob))
            yield item
            if progress:
                progress(n, total)
        for e in tx.transfer.entities(cube.pk):
            yield {
                "type": "entity",
                "key": e.pk,
                "entity": {"name": e.name, "normalized": e.normalized, "type": e.type},
            }
        for e in tx.transfer.edges(cube.pk):
            ends = []
            for kind, pk in ((e.src_kind, e.src_pk), (e.dst_kind, e.dst_pk)):
                ends.append([kind, ids.get(pk) if kind == "record" else pk])
            if any(k == "record" and v is None for k, v in ends):
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


def import_items(
    tx: Tx,
    embedder: Embedder,
    cube: CubeData,
    lines: Iterator[dict[str, Any]],
    same_model: bool,
    file_dim: int,
    total: int | None,
    progress: Progress | None,
    blobs: BlobStore | None = None,
    written: list[str] | None = None,
) -> None:
    """Insert a cube file's items into `cube` inside the caller's transaction. Tier files
    are written under the new cube and listed in `written`, for the caller to remove
    should the transaction fail."""
    record_pks: dict[str, int] = {}
    entity_pks: dict[Any, int] = {}
    pending: list[RecordData] = []
    n = 0

    def flush() -> None:
        redo = [r for r in pending if r.tier == "plaintext"]
        if not same_model and redo:
            vecs = embedder.encode(
                [embedding_text(r.content, r.source, r.event_time, context_of(tx, r)) for r in redo]
            )
            tx.transfer.set_embeddings({r.pk: v.tobytes() for r, v in zip(redo, vecs, strict=True)})
        for r in pending:
            record_pks[r.id] = r.pk
        tx.changes.append(cube.pk, [r.pk for r in pending], "upsert")
        pending.clear()

    try:
        for item in lines:
            if item["type"] == "record":
                values = record_fields(item["record"])
                values["embedding"] = (
                    portable.decode_vector(
                        item.get("embedding"), file_dim, values["embedding_precision"]
                    )
                    if same_model
                    else None
                )
                if item.get("blob") and blobs is not None:
                    rel = blobs.relpath(cube.id, values["id"])
                    blobs.write_bytes(rel, base64.b64decode(item["blob"]))
                    if written is not None:
                        written.append(rel)
                    values["source"] = {**values["source"], "blob": rel}
                elif values["tier"] != "plaintext" and values["status"] == "active":
                    values["status"] = "archived"  # its file did not travel: listed, not usable
                versions = [version_fields(v) for v in item.get("versions") or []]
                pending.append(tx.transfer.add_record(cube.pk, values, versions))
                n += 1
                if len(pending) >= 256:
                    flush()
                if progress:
                    progress(n, total)
            elif item["type"] == "entity":
                flush()
                ent = item["entity"]
                entity_pks[item["key"]] = tx.transfer.add_entity(
                    cube.pk,
                    name=ent["name"],
                    normalized=ent["normalized"],
                    type=ent.get("type", "thing"),
                )
            else:
                flush()
                edge = item["edge"]
                ends = []
                for kind, ref in (edge["src"], edge["dst"]):
                    table = record_pks if kind == "record" else entity_pks
                    ends.append((kind, table.get(ref, ref if kind == "topic" else None)))
                if any(pk is None for _, pk in ends):
                    raise InvalidInput(f"edge refers to a missing node: {edge}")
                tx.transfer.add_edge(
                    cube.pk,
                    type=edge["type"],
                    src=ends[0],
                    dst=ends[1],
                    weight=edge.get("weight", 1.0),
                    meta=edge.get("metadata") or {},
                    created_at=to_utc(edge.get("created_at"), field="created_at"),
                )
        flush()
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"cube file has a malformed item: {exc!r}") from exc


def record_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """The columns of a record from its exported form (times parsed to UTC)."""
    times = ("event_time", "valid_from", "valid_to", "created_at", "updated_at")
    out = {
        "id": rec["id"],
        "tier": rec.get("tier", "plaintext"),
        "kind": rec["kind"],
        "content": rec["content"],
        "source": rec.get("source") or {},
        "user_id": rec.get("user_id"),
        "agent_id": rec.get("agent_id"),
        "session_id": rec.get("session_id"),
        "version": rec["version"],
        "status": rec["status"],
        "importance": rec.get("importance", 0.5),
        "strength": rec.get("strength", 1.0),
        "recall_count": rec.get("recall_count", 0),
        "last_recalled_at": to_utc(rec.get("last_recalled_at"), field="last_recalled_at"),
        "tags": rec.get("tags") or [],
        "entities": rec.get("entities") or [],
        "embedding_precision": rec.get("embedding_precision", "float32"),
        "meta": rec.get("metadata") or {},
        "pinned": bool(rec.get("pinned", False)),
    }
    for t in times:
        out[t] = to_utc(rec.get(t), field=t)
    return out


def version_fields(v: dict[str, Any]) -> dict[str, Any]:
    """The columns of a record version from its exported form (`record_pk` left out)."""
    return {
        "version": v["version"],
        "change": v["change"],
        "content": v["content"],
        "kind": v["kind"],
        "status": v["status"],
        "tags": v.get("tags") or [],
        "importance": v.get("importance", 0.5),
        "event_time": to_utc(v.get("event_time"), field="event_time"),
        "valid_from": to_utc(v.get("valid_from"), field="valid_from"),
        "valid_to": to_utc(v.get("valid_to"), field="valid_to"),
        "meta": v.get("metadata") or {},
        "changed_at": to_utc(v["changed_at"], field="changed_at"),
        "cause_id": v.get("cause_id"),
    }
