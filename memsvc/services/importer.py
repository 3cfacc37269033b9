"""One import in progress: records read, checked and embedded a batch at a time outside any
transaction, written into the staging cube in short ones (memsvc/services/transfer.py says why)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memsvc import portable
from memsvc.chunking import chunk_id
from memsvc.errors import Conflict, StorageError
from memsvc.models import EDGE_TYPES
from memsvc.retrieval.analyze import (
    CONTEXT_TURNS,
    embedding_text,
    stored_anchor,
    takes_context,
    turn_line,
)
from memsvc.retrieval.sentence_keys import MAX_KEYS, key_texts
from memsvc.services.import_checks import (
    _b64,
    _bad,
    _int,
    _json_object,
    _number,
    _short,
    _time,
    record_fields,
    version_fields,
)
from memsvc.store.blobs import BlobError
from memsvc.store.data import CubeData, new_id
from memsvc.store.errors import StoreConflict
from memsvc.store.tx import Tx

if TYPE_CHECKING:
    from memsvc.services.transfer import TransferService

BATCH_RECORDS = 256  # records embedded and written per transaction
BATCH_CHARS = 8 << 20  # or fewer, when their text and history are this large
ROWS_PER_TX = 1000  # entities or edges written per transaction
Progress = Callable[[int, int | None], None]


@dataclass
class _Rec:
    """A record read, checked and waiting for its batch to be written."""

    file_id: str
    values: dict[str, Any]
    versions: list[dict[str, Any]]
    text: str | None  # what to embed; None: its embedding came with it
    keys: list[str] = field(default_factory=list)  # sentence keys to embed (none came with it)
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
        text, keys = None, []
        if values["tier"] == "plaintext":  # a tier record is found through its memories
            context = self._context(values)
            if embedding is None:
                text = embedding_text(
                    values["content"], values["source"], values["event_time"], context
                )
            keys = self._keys(item, values)
            values["time_anchor"] = stored_anchor(
                values["content"], values["source"], values["event_time"]
            )
        rec = _Rec(file_id, values, [], text, keys)
        limit = self.max_text if values["tier"] == "plaintext" else 16 * self.max_text
        self.current = _Current(file_id, limit, rec=rec)
        self._tier_file(rec, item, lines)
        self._versions(file_id, item.get("versions"), write=False)
        rec.chars = len(values["content"]) + sum(len(v["content"]) for v in rec.versions)
        self.batch.append(rec)
        self.batch_chars += rec.chars

    def _keys(self, item: dict[str, Any], v: dict[str, Any]) -> list[str]:
        """Take the record's sentence keys from the file (same model), or say which to embed,
        as `add` would have (a file from before keys, or from another model)."""
        v["key_embeddings"] = None
        if not self.engine.settings.sentence_keys or v["status"] == "deleted":
            return []  # a restore embeds a deleted record's keys again
        if self.same_model and item.get("keys") is not None:
            v["key_embeddings"] = portable.decode_keys(item["keys"], self.file_dim, MAX_KEYS)
            return []
        return key_texts(v["content"], v["source"], v["event_time"])

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
        keyed = [(r, text) for r in batch for text in r.keys]
        rows: dict[int, list[bytes]] = {}
        for i in range(0, len(keyed), step):
            part = keyed[i : i + step]
            vecs = self.engine.embedder.encode([text for _, text in part])
            for (r, _), vec in zip(part, vecs, strict=True):
                rows.setdefault(id(r), []).append(vec.astype("float32").tobytes())
        for r in batch:
            if id(r) in rows:
                r.values["key_embeddings"] = b"".join(rows[id(r)])
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
