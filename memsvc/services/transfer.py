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

import base64
import binascii
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from memsvc import portable
from memsvc._convert import record_model, version_model
from memsvc.chunking import chunk_id
from memsvc.errors import Conflict, InvalidInput, StorageError
from memsvc.models import EDGE_TYPES, Cube
from memsvc.retrieval.analyze import CONTEXT_TURNS, embedding_text, takes_context, turn_line
from memsvc.services.cubes import CubeService
from memsvc.store.blobs import BlobError, BlobStore
from memsvc.store.data import CubeData, RecordData, new_id
from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict
from memsvc.store.index_spec import is_index_spec
from memsvc.store.precision import PRECISIONS
from memsvc.store.tx import Tx
from memsvc.validation import (
    check_cube_name,
    check_ident,
    check_importance,
    check_metadata,
    check_tags,
    check_text,
    to_utc,
)

__all__ = ["STAGING_TENANT", "STALE_S", "TransferService", "record_fields", "version_fields"]

Progress = Callable[[int, int | None], None]
log = logging.getLogger(__name__)

# A tenant no API key can name (names are printable), owning the cubes imports are building.
STAGING_TENANT = "\x7fimports"
STALE_S = 3600.0  # a staging cube that has not grown for this long was left by a crash
IMPORT_GROWTH = 16  # a file may decompress to this many times the upload limit
BATCH_RECORDS = 256  # records embedded and written per transaction
BATCH_CHARS = 8 << 20  # or fewer, when their text and history are this large
ROWS_PER_TX = 1000  # entities or edges written per transaction
TIERS = ("plaintext", "activation", "parametric")
STATUSES = ("active", "archived", "deleted")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


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
        for n, (r, embedding) in enumerate(tx.transfer.records(cube.pk), start=1):
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


@dataclass
class _Rec:
    """A record read, checked and waiting for its batch to be written."""

    file_id: str
    values: dict[str, Any]
    versions: list[dict[str, Any]]
    text: str | None  # what to embed; None: its embedding came with it
    final_id: str | None = None  # decided early for a record with a file
    chars: int = 0


@dataclass
class _Current:
    """The record whose versions and file lines may follow it."""

    file_id: str
    max_bytes: int  # of a version's text
    versions: set[int] = field(default_factory=set)
    rec: _Rec | None = None  # None once written


class _Import:
    """One import into a staging cube (see the module's docstring)."""

    def __init__(self, service: TransferService, staging: CubeData, header: dict[str, Any]):
        self.service = service
        self.engine = service.engine
        self.staging = staging
        self.tenant_pk = service.cubes.tenant_pk
        self.blobs = self.engine.tiers.blobs
        self.max_text = self.engine.settings.max_text_bytes
        emb = header.get("embedding") or {}
        if not isinstance(emb, dict):
            raise _bad("embedding", "must be an object")
        embedder = self.engine.embedder
        self.same_model = emb.get("model") == embedder.model_id and emb.get("dim") == embedder.dim
        self.file_dim = emb.get("dim") if isinstance(emb.get("dim"), int) else 0
        total = header.get("records")
        self.total = total if isinstance(total, int) and not isinstance(total, bool) else None
        self.record_pks: dict[str, int] = {}
        self.seen: set[str] = set()
        self.new_ids: dict[str, str] = {}  # file id -> the id given instead
        self.new_messages: dict[str, str] = {}  # message id of remapped chunks -> new one
        self.turns: dict[tuple[Any, Any], list[str]] = {}
        self.entity_pks: dict[Any, int] = {}
        self.entity_keys: set[Any] = set()
        self.entity_names: set[tuple[str, str]] = set()
        self.batch: list[_Rec] = []
        self.batch_chars = 0
        self.later_versions: list[tuple[str, dict[str, Any]]] = []
        self.entities: list[tuple[Any, dict[str, Any]]] = []
        self.edges: list[dict[str, Any]] = []
        self.current: _Current | None = None
        self.n = 0
        self.pending: dict[str, Any] | None = None  # an item read ahead

    def run(self, lines: Iterator[dict[str, Any]], progress: Progress | None) -> None:
        while (item := self._next(lines)) is not None:
            kind = item["type"]
            if kind == "record":
                if len(self.batch) >= BATCH_RECORDS or self.batch_chars >= BATCH_CHARS:
                    self._write_records()
                self._record(item, lines)
                self.n += 1
                if progress:
                    progress(self.n, self.total)
            elif kind == "versions":
                self._versions(item.get("id"), item.get("versions"))
            elif kind == "blob":
                raise _bad("blob.id", "names no record whose file this could be")
            elif kind == "entity":
                self._write_records()
                self._entity(item)
            else:
                self._write_records()
                self._write_entities()
                self._edge(item)
        self._write_records()
        self._write_entities()
        self._write_edges()

    def _next(self, lines: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
        if self.pending is not None:
            item, self.pending = self.pending, None
            return item
        return next(lines, None)

    # ---- records ----------------------------------------------------------------------------

    def _record(self, item: dict[str, Any], lines: Iterator[dict[str, Any]]) -> None:
        values = record_fields(item.get("record"), max_text_bytes=self.max_text)
        file_id = values["id"]
        if file_id in self.seen:
            raise _bad("record.id", f"{file_id} appears twice in the file")
        self.seen.add(file_id)
        values["created_at"] = values["created_at"] or self.engine.now()
        values["updated_at"] = values["updated_at"] or values["created_at"]
        embedding = None
        if self.same_model and item.get("embedding") is not None:
            embedding = portable.decode_vector(
                item["embedding"], self.file_dim, values["embedding_precision"]
            )
        values["embedding"] = embedding
        text = None
        if values["tier"] == "plaintext":  # a tier record is found through its memories
            context = self._context(values)
            if embedding is None:
                text = embedding_text(
                    values["content"], values["source"], values["event_time"], context
                )
        rec = _Rec(file_id, values, [], text)
        limit = self.max_text if values["tier"] == "plaintext" else 16 * self.max_text
        self.current = _Current(file_id, limit, rec=rec)
        self._tier_file(rec, item, lines)
        self._versions(file_id, item.get("versions"), write=False)
        rec.chars = len(values["content"]) + sum(len(v["content"]) for v in rec.versions)
        self.batch.append(rec)
        self.batch_chars += rec.chars

    def _context(self, v: dict[str, Any]) -> list[str]:
        """The turns a chat turn is embedded with: those before it in its session, as the
        file orders them (what `add` used, `memsvc.turn_context`)."""
        if v["session_id"] is None:
            return []
        before = self.turns.setdefault((v["session_id"], v["user_id"]), [])
        context = list(before) if takes_context(v["content"], v["source"]) else []
        if v["status"] != "deleted":
            before.append(turn_line(v["content"], v["source"]))
            del before[:-CONTEXT_TURNS]
        return context

    def _versions(self, file_id: Any, versions: Any, *, write: bool = True) -> None:
        """More history of the record just read (in its line, or in `versions` lines)."""
        cur = self.current
        if cur is None or file_id != cur.file_id:
            raise _bad("id", "must be the id of the record before it")
        if versions is None:
            return
        if not isinstance(versions, list):
            raise _bad("versions", "must be a list")
        for i, raw in enumerate(versions):
            v = version_fields(raw, i, max_text_bytes=cur.max_bytes)
            if v["version"] in cur.versions:
                raise _bad(f"versions[{i}].version", f"{v['version']} appears twice")
            cur.versions.add(v["version"])
            if cur.rec is not None:
                cur.rec.versions.append(v)
                self.batch_chars += len(v["content"]) if write else 0
            else:
                self.later_versions.append((file_id, v))
        if write and (self.batch_chars >= BATCH_CHARS or len(self.later_versions) >= ROWS_PER_TX):
            self._write_records()

    def _tier_file(self, rec: _Rec, item: dict[str, Any], lines: Iterator[dict[str, Any]]) -> None:
        """The record's file from the bytes in the file, at the place its own ids give."""
        values = rec.values
        source = {k: v for k, v in values["source"].items() if k not in ("blob", "bytes")}
        inline, size = item.get("blob"), item.get("blob_bytes")
        if values["tier"] == "plaintext":
            if inline is not None or size is not None:
                raise _bad("blob", "comes with a plaintext record")
            values["source"] = source
            return
        rec.final_id = self._final_ids([rec])[rec.file_id]
        written = None
        try:
            if inline is not None:
                if not isinstance(inline, str):
                    raise _bad("blob", "must be base64 text")
                written = self.blobs.save_bytes(self.staging.id, rec.final_id, _b64(inline, "blob"))
            elif size is not None:
                size = _int(size, "blob_bytes", least=0)
                parts = self._parts(rec.file_id, lines)
                written = self.blobs.save_chunks(self.staging.id, rec.final_id, parts)
                if written != size:
                    raise _bad("blob_bytes", f"says {size} bytes; the parts hold {written}")
        except BlobError as exc:  # the ids are checked: the disk failed
            raise StorageError(f"cannot write the tier file of {rec.file_id}: {exc}") from exc
        source["blob"] = self.blobs.relpath(self.staging.id, rec.final_id)
        if written is not None:
            source["bytes"] = written
        elif values["status"] == "active":
            values["status"] = "archived"  # its file did not travel: listed, not usable
        values["source"] = source

    def _parts(self, file_id: str, lines: Iterator[dict[str, Any]]) -> Iterator[bytes]:
        while (item := self._next(lines)) is not None:
            if item["type"] != "blob":
                self.pending = item
                return
            if item.get("id") != file_id:
                raise _bad("blob.id", "must be the id of the record before it")
            data = item.get("data")
            if not isinstance(data, str):
                raise _bad("blob.data", "must be base64 text")
            yield _b64(data, "blob.data")

    def _final_ids(self, recs: list[_Rec], tx: Tx | None = None) -> dict[str, str]:
        """The id each record gets: its own, or a new one where another tenant's record
        has it (chunks of one message stay one message). `Conflict` for the caller's own."""
        ids = [r.file_id for r in recs]
        if tx is None:
            with self.engine.db.reading() as rtx:
                taken = rtx.transfer.taken_ids(self.tenant_pk, ids)
        else:
            taken = tx.transfer.taken_ids(self.tenant_pk, ids)
        out: dict[str, str] = {}
        for r in recs:
            if r.final_id is not None:
                out[r.file_id] = r.final_id
                continue
            if taken.get(r.file_id):
                raise Conflict(
                    f"record {r.file_id} already exists here: delete it first, or import "
                    "the file elsewhere",
                    details={"id": r.file_id},
                )
            src = r.values["source"]
            message, chunk = src.get("message_id"), src.get("chunk")
            chunked = isinstance(message, str) and isinstance(chunk, int)
            if r.file_id in taken or (chunked and message in self.new_messages):
                if chunked:
                    fresh = self.new_messages.setdefault(message, new_id())
                    src["message_id"] = fresh
                    out[r.file_id] = chunk_id(fresh, chunk)
                else:
                    out[r.file_id] = new_id()
                self.new_ids[r.file_id] = out[r.file_id]
            else:
                out[r.file_id] = r.file_id
        return out

    def _write_records(self) -> None:
        """Embed the batch (no transaction open), then write it in one short transaction."""
        batch, later = self.batch, self.later_versions
        if not batch and not later:
            return
        redo = [r for r in batch if r.text is not None]
        step = self.engine.settings.embed_batch_size  # other callers' texts get in between
        for i in range(0, len(redo), step):
            part = redo[i : i + step]
            vecs = self.engine.embedder.encode([r.text for r in part])
            for r, vec in zip(part, vecs, strict=True):
                r.values["embedding"] = vec.tobytes()
                r.values["embedding_precision"] = "float32"
        cube_pk = self.staging.pk
        try:
            with self.engine.db.writing() as tx:
                tx.changes.lock(cube_pk)
                ids = self._final_ids(batch, tx)
                pks = []
                for r in batch:
                    values = r.values
                    values["id"] = ids[r.file_id]
                    self._map_sources(values)
                    for v in r.versions:
                        if v["cause_id"] is not None:
                            v["cause_id"] = self.new_ids.get(v["cause_id"], v["cause_id"])
                    row = tx.transfer.add_record(cube_pk, values, r.versions)
                    self.record_pks[r.file_id] = row.pk
                    pks.append(row.pk)
                for file_id, v in later:
                    if v["cause_id"] is not None:
                        v["cause_id"] = self.new_ids.get(v["cause_id"], v["cause_id"])
                    tx.transfer.add_versions(self.record_pks[file_id], [v])
                if pks:
                    tx.changes.append(cube_pk, pks, "upsert")
                tx.transfer.touch_cube(cube_pk, self.engine.now())
        except StoreConflict as exc:
            raise Conflict("the import clashed with a write made meanwhile; try again") from exc
        if self.current is not None:
            self.current.rec = None
        self.batch, self.later_versions, self.batch_chars = [], [], 0

    def _map_sources(self, values: dict[str, Any]) -> None:
        """A tier record names the memories it was built from: by their ids here."""
        members = values["source"].get("records")
        if isinstance(members, list):
            values["source"]["records"] = [
                {**m, "id": self.new_ids.get(m["id"], m["id"])}
                if isinstance(m, dict) and isinstance(m.get("id"), str)
                else m
                for m in members
            ]

    # ---- entities and edges -----------------------------------------------------------------

    def _entity(self, item: dict[str, Any]) -> None:
        key, ent = item.get("key"), item.get("entity")
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise _bad("key", "must be a number or a string")
        if key in self.entity_keys:
            raise _bad("key", f"{key!r} appears twice in the file")
        self.entity_keys.add(key)
        if not isinstance(ent, dict):
            raise _bad("entity", "must be an object")
        name = ent.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad("entity.name", "must be a non-empty string")
        values = {
            "name": _short(name, "entity.name", most=512),
            "normalized": _short(ent.get("normalized"), "entity.normalized", most=512),
            "type": _short(ent.get("type", "thing"), "entity.type", most=32),
        }
        pair = (values["normalized"], values["type"])
        if pair in self.entity_names:
            raise _bad("entity.normalized", f"{pair[0]!r} ({pair[1]}) appears twice")
        self.entity_names.add(pair)
        self.entities.append((key, values))
        if len(self.entities) >= ROWS_PER_TX:
            self._write_entities()

    def _write_entities(self) -> None:
        if not self.entities:
            return
        with self.engine.db.writing() as tx:
            for key, values in self.entities:
                self.entity_pks[key] = tx.transfer.add_entity(self.staging.pk, **values)
            tx.transfer.touch_cube(self.staging.pk, self.engine.now())
        self.entities = []

    def _edge(self, item: dict[str, Any]) -> None:
        edge = item.get("edge")
        if not isinstance(edge, dict):
            raise _bad("edge", "must be an object")
        typ = _short(edge.get("type"), "edge.type", most=32, choices=EDGE_TYPES)
        ends = []
        for end in ("src", "dst"):
            ref = edge.get(end)
            if not isinstance(ref, list) or len(ref) != 2:
                raise _bad(f"edge.{end}", "must be [kind, id]")
            kind, ref = ref
            if kind == "topic":
                return  # a node of the database the file came from: the tree is rebuilt
            if kind == "record":
                pk = self.record_pks.get(ref) if isinstance(ref, str) else None
            elif kind == "entity":
                pk = self.entity_pks.get(ref) if isinstance(ref, int | str) else None
            else:
                raise _bad(f"edge.{end}", "must be a record or an entity")
            if pk is None:
                raise _bad(f"edge.{end}", f"refers to a {kind} not in the file")
            ends.append((kind, pk))
        self.edges.append(
            {
                "type": typ,
                "src": ends[0],
                "dst": ends[1],
                "weight": _number(edge.get("weight", 1.0), "edge.weight"),
                "meta": _json_object(edge.get("metadata"), "edge.metadata"),
                "created_at": _time(edge.get("created_at"), "edge.created_at"),
            }
        )
        if len(self.edges) >= ROWS_PER_TX:
            self._write_edges()

    def _write_edges(self) -> None:
        if not self.edges:
            return
        with self.engine.db.writing() as tx:
            for e in self.edges:
                tx.transfer.add_edge(self.staging.pk, **e)
            tx.transfer.touch_cube(self.staging.pk, self.engine.now())
        self.edges = []


def _b64(text: str, field_: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(field_, "is not valid base64") from None
