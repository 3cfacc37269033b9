"""Moving a cube in and out of the portable file: the item stream written by export, and
the inserts an import makes inside its one transaction. (`memsvc.portable` owns the format.)
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from memsvc import portable
from memsvc._convert import record_model, version_model
from memsvc.embedder import Embedder
from memsvc.errors import InvalidInput
from memsvc.retrieval.analyze import embedding_text
from memsvc.store import repository as repo
from memsvc.store.blobs import BlobStore
from memsvc.store.database import Database
from memsvc.store.orm import CubeRow, EdgeRow, EntityRow, RecordRow, VersionRow, utcnow
from memsvc.turn_context import context_of
from memsvc.validation import to_utc

__all__ = ["export_lines", "import_items", "record_fields", "version_row"]

Progress = Callable[[int, int | None], None]


def export_lines(
    db: Database,
    cube: CubeRow,
    total: int,
    progress: Progress | None,
    blobs: BlobStore | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record (with versions and embedding, and the file of an activation or
    parametric record), entity and edge of a cube, streamed."""
    with db.read() as s:
        ids: dict[int, str] = {}
        for n, r in enumerate(repo.iter_cube_records(s, cube.pk), start=1):
            ids[r.pk] = r.id
            rec = record_model(r).model_dump(mode="json")
            versions = [
                version_model(r.id, v).model_dump(mode="json") for v in repo.versions_for(s, r.pk)
            ]
            item = {
                "type": "record",
                "record": rec,
                "versions": versions,
                "embedding": portable.encode_vector(r.embedding),
            }
            blob = (r.source or {}).get("blob") if r.tier != "plaintext" else None
            if blob and blobs is not None and r.status == "active" and blobs.exists(blob):
                item["blob"] = portable.encode_vector(blobs.read_bytes(blob))
            yield item
            if progress:
                progress(n, total)
        for e in repo.entities_for_cube(s, cube.pk):
            yield {
                "type": "entity",
                "key": e.pk,
                "entity": {"name": e.name, "normalized": e.normalized, "type": e.type},
            }
        for e in repo.edges_for_cube(s, cube.pk):
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
    s: Any,
    embedder: Embedder,
    cube: CubeRow,
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
    pending: list[RecordRow] = []
    n = 0

    def flush() -> None:
        redo = [r for r in pending if r.tier == "plaintext"]
        if not same_model and redo:
            vecs = embedder.encode(
                [embedding_text(r.content, r.source, r.event_time, context_of(s, r)) for r in redo]
            )
            for r, v in zip(redo, vecs, strict=True):
                r.embedding, r.embedding_precision = v.tobytes(), "float32"
        s.flush()
        for r in pending:
            record_pks[r.id] = r.pk
        repo.add_change(s, cube.pk, [r.pk for r in pending], "upsert")
        pending.clear()

    try:
        for item in lines:
            if item["type"] == "record":
                rec, row = item["record"], None
                row = RecordRow(cube_pk=cube.pk, **record_fields(rec))
                row.embedding = (
                    portable.decode_vector(item.get("embedding"), file_dim, row.embedding_precision)
                    if same_model
                    else None
                )
                if item.get("blob") and blobs is not None:
                    rel = blobs.relpath(cube.id, row.id)
                    blobs.write_bytes(rel, base64.b64decode(item["blob"]))
                    if written is not None:
                        written.append(rel)
                    row.source = {**row.source, "blob": rel}
                elif row.tier != "plaintext" and row.status == "active":
                    row.status = "archived"  # its file did not travel: listed, not usable
                s.add(row)
                s.flush()
                for v in item.get("versions") or []:
                    s.add(version_row(row.pk, v))
                pending.append(row)
                n += 1
                if len(pending) >= 256:
                    flush()
                if progress:
                    progress(n, total)
            elif item["type"] == "entity":
                flush()
                ent = item["entity"]
                e = EntityRow(
                    cube_pk=cube.pk,
                    name=ent["name"],
                    normalized=ent["normalized"],
                    type=ent.get("type", "thing"),
                )
                s.add(e)
                s.flush()
                entity_pks[item["key"]] = e.pk
            else:
                flush()
                edge = item["edge"]
                ends = []
                for kind, ref in (edge["src"], edge["dst"]):
                    table = record_pks if kind == "record" else entity_pks
                    ends.append((kind, table.get(ref, ref if kind == "topic" else None)))
                if any(pk is None for _, pk in ends):
                    raise InvalidInput(f"edge refers to a missing node: {edge}")
                s.add(
                    EdgeRow(
                        cube_pk=cube.pk,
                        type=edge["type"],
                        src_kind=ends[0][0],
                        src_pk=ends[0][1],
                        dst_kind=ends[1][0],
                        dst_pk=ends[1][1],
                        weight=edge.get("weight", 1.0),
                        meta=edge.get("metadata") or {},
                        created_at=to_utc(edge.get("created_at"), field="created_at") or utcnow(),
                    )
                )
        flush()
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"cube file has a malformed item: {exc!r}") from exc


def record_fields(rec: dict[str, Any]) -> dict[str, Any]:
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


def version_row(record_pk: int, v: dict[str, Any]) -> VersionRow:
    return VersionRow(
        record_pk=record_pk,
        version=v["version"],
        change=v["change"],
        content=v["content"],
        kind=v["kind"],
        status=v["status"],
        tags=v.get("tags") or [],
        importance=v.get("importance", 0.5),
        event_time=to_utc(v.get("event_time"), field="event_time"),
        valid_from=to_utc(v.get("valid_from"), field="valid_from"),
        valid_to=to_utc(v.get("valid_to"), field="valid_to"),
        meta=v.get("metadata") or {},
        changed_at=to_utc(v["changed_at"], field="changed_at"),
        cause_id=v.get("cause_id"),
    )
