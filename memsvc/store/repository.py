"""Queries and writes over the ORM, one function per operation, each given a session.

Callers own the transaction (`Database.write()` / `.read()`), so a multi-step write such as
"insert records, their first versions, graph edges and change-log rows" commits as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload, undefer

from memsvc.store.orm import (
    ApiKeyRow,
    ChangeRow,
    CubeRow,
    CubeShareRow,
    EdgeRow,
    EntityRow,
    RecallEventRow,
    RecordRow,
    TenantRow,
    VersionRow,
    utcnow,
)
from memsvc.store.precision import decode_stored

__all__ = [
    "RecordQuery",
    "active_vectors",
    "add_api_key",
    "add_change",
    "all_cubes",
    "changes_since",
    "create_cube",
    "cube_record_counts",
    "delete_cube",
    "edges_for_cube",
    "ensure_tenant",
    "entities_for_cube",
    "find_api_key",
    "find_cube",
    "find_tenant",
    "get_record",
    "graph_edge",
    "hard_delete_record",
    "insert_records",
    "iter_cube_records",
    "list_api_keys",
    "list_cubes",
    "lock_cube_changes",
    "matching_pks",
    "max_change_seq",
    "new_version",
    "preceding_turns",
    "query_records",
    "records_by_pks",
    "resolve_cube",
    "set_recalled",
    "share_cube",
    "shared_cubes",
    "shares_of",
    "snapshot_version",
    "versions_for",
]

VERSIONED_FIELDS = (
    "content",
    "kind",
    "status",
    "tags",
    "importance",
    "event_time",
    "valid_from",
    "valid_to",
    "meta",
)


def new_id() -> str:
    return str(uuid.uuid4())


# ---- tenants and cubes ---------------------------------------------------------------------


def ensure_tenant(s: Session, name: str) -> TenantRow:
    row = s.scalar(select(TenantRow).where(TenantRow.name == name))
    if row is None:
        row = TenantRow(name=name, created_at=utcnow())
        s.add(row)
        s.flush()
    return row


def find_cube(s: Session, tenant_pk: int, *, name: str | None = None, id: str | None = None):
    q = select(CubeRow).where(CubeRow.tenant_pk == tenant_pk)
    q = q.where(CubeRow.name == name) if name is not None else q.where(CubeRow.id == id)
    return s.scalar(q)


def resolve_cube(s: Session, tenant_pk: int, ref: str) -> tuple[CubeRow, str] | None:
    """(cube, access) for a name or id: the tenant's own cube ("owner") first, else a cube
    shared with it ("read", by id only: names are only unique within their owner)."""
    own = find_cube(s, tenant_pk, name=ref) or find_cube(s, tenant_pk, id=ref)
    if own is not None:
        return own, "owner"
    shared = s.scalar(
        select(CubeRow)
        .join(CubeShareRow, CubeShareRow.cube_pk == CubeRow.pk)
        .where(CubeShareRow.tenant_pk == tenant_pk, CubeRow.id == ref)
    )
    return (shared, "read") if shared is not None else None


def shared_cubes(s: Session, tenant_pk: int) -> list[CubeRow]:
    return list(
        s.scalars(
            select(CubeRow)
            .join(CubeShareRow, CubeShareRow.cube_pk == CubeRow.pk)
            .where(CubeShareRow.tenant_pk == tenant_pk)
            .order_by(CubeRow.pk)
        )
    )


def share_cube(s: Session, cube_pk: int, tenant_pk: int) -> CubeShareRow:
    row = s.scalar(
        select(CubeShareRow).where(
            CubeShareRow.cube_pk == cube_pk, CubeShareRow.tenant_pk == tenant_pk
        )
    )
    if row is None:
        row = CubeShareRow(cube_pk=cube_pk, tenant_pk=tenant_pk, mode="read", created_at=utcnow())
        s.add(row)
        s.flush()
    return row


def shares_of(s: Session, cube_pk: int) -> list[str]:
    """Names of the tenants a cube is shared with."""
    return list(
        s.scalars(
            select(TenantRow.name)
            .join(CubeShareRow, CubeShareRow.tenant_pk == TenantRow.pk)
            .where(CubeShareRow.cube_pk == cube_pk)
            .order_by(TenantRow.name)
        )
    )


# ---- API keys ----------------------------------------------------------------------------------


def add_api_key(
    s: Session, tenant_pk: int, *, key_id: str, secret_hash: str, name: str | None
) -> ApiKeyRow:
    row = ApiKeyRow(
        key_id=key_id,
        tenant_pk=tenant_pk,
        secret_hash=secret_hash,
        name=name,
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return row


def find_api_key(s: Session, key_id: str) -> ApiKeyRow | None:
    return s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))


def list_api_keys(s: Session, tenant_pk: int | None = None) -> list[ApiKeyRow]:
    q = select(ApiKeyRow).order_by(ApiKeyRow.pk)
    if tenant_pk is not None:
        q = q.where(ApiKeyRow.tenant_pk == tenant_pk)
    return list(s.scalars(q))


def find_tenant(s: Session, name: str) -> TenantRow | None:
    return s.scalar(select(TenantRow).where(TenantRow.name == name))


def create_cube(
    s: Session,
    tenant_pk: int,
    *,
    name: str,
    embedding_model: str,
    embedding_dim: int,
    description: str | None = None,
    owner_user_id: str | None = None,
    meta: dict[str, Any] | None = None,
    id: str | None = None,
    created_at: datetime | None = None,
    search_mode: str | None = None,
) -> CubeRow:
    row = CubeRow(
        search_mode=search_mode,
        id=id or new_id(),
        tenant_pk=tenant_pk,
        name=name,
        description=description,
        owner_user_id=owner_user_id,
        embedding_model=embedding_model,
        embedding_dim=embedding_dim,
        meta=meta or {},
        created_at=created_at or utcnow(),
    )
    s.add(row)
    s.flush()
    return row


def all_cubes(s: Session) -> list[CubeRow]:
    return list(s.scalars(select(CubeRow).order_by(CubeRow.pk)))


def list_cubes(s: Session, tenant_pk: int) -> list[CubeRow]:
    return list(
        s.scalars(select(CubeRow).where(CubeRow.tenant_pk == tenant_pk).order_by(CubeRow.pk))
    )


def cube_record_counts(s: Session, cube_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per cube, the number of records in each status."""
    out: dict[int, dict[str, int]] = {pk: {} for pk in cube_pks}
    if not cube_pks:
        return out
    rows = s.execute(
        select(RecordRow.cube_pk, RecordRow.status, func.count())
        .where(RecordRow.cube_pk.in_(cube_pks))
        .group_by(RecordRow.cube_pk, RecordRow.status)
    )
    for cube_pk, status, n in rows:
        out[cube_pk][status] = n
    return out


def delete_cube(s: Session, cube: CubeRow) -> None:
    record_pks = select(RecordRow.pk).where(RecordRow.cube_pk == cube.pk)
    s.execute(delete(VersionRow).where(VersionRow.record_pk.in_(record_pks)))
    s.execute(delete(RecordRow).where(RecordRow.cube_pk == cube.pk))
    s.execute(delete(EdgeRow).where(EdgeRow.cube_pk == cube.pk))
    s.execute(delete(EntityRow).where(EntityRow.cube_pk == cube.pk))
    s.execute(delete(ChangeRow).where(ChangeRow.cube_pk == cube.pk))
    s.execute(delete(RecallEventRow).where(RecallEventRow.cube_pk == cube.pk))
    s.execute(delete(CubeShareRow).where(CubeShareRow.cube_pk == cube.pk))
    s.delete(cube)


# ---- records ---------------------------------------------------------------------------------


def snapshot_version(row: RecordRow, change: str, at: datetime) -> VersionRow:
    return VersionRow(
        record_pk=row.pk,
        version=row.version,
        change=change,
        changed_at=at,
        **{f: getattr(row, f) for f in VERSIONED_FIELDS},
    )


def new_version(
    s: Session,
    row: RecordRow,
    change: str,
    at: datetime,
    *,
    cause_id: str | None = None,
    op: str | None = "upsert",
) -> None:
    """After changing `row`: bump its version, snapshot it (naming the record that caused the
    change, if any) and log the change for the indexes (`op=None`: no index sees it)."""
    row.version += 1
    row.updated_at = at
    s.flush()
    version = snapshot_version(row, change, at)
    version.cause_id = cause_id
    s.add(version)
    if op is not None:
        add_change(s, row.cube_pk, [row.pk], op)


def graph_edge(
    cube_pk: int,
    type: str,
    src_pk: int,
    dst_pk: int,
    at: datetime,
    *,
    src_kind: str = "record",
    dst_kind: str = "record",
    weight: float = 1.0,
) -> EdgeRow:
    return EdgeRow(
        cube_pk=cube_pk,
        type=type,
        src_kind=src_kind,
        src_pk=src_pk,
        dst_kind=dst_kind,
        dst_pk=dst_pk,
        weight=weight,
        created_at=at,
    )


def lock_cube_changes(s: Session, cube_pk: int) -> None:
    """Hold the cube's change-log lock until this transaction ends (PostgreSQL; SQLite's
    writers are one at a time already).

    Readers catch up with `seq > last seen`, which is only sound if a cube's changes commit
    in the order of their sequence numbers: without the lock, a write that drew seq 10 could
    commit after one that drew 11, and a worker that had read 11 would never see 10. Taken
    first in a transaction that writes a cube's records, so it never waits while holding a
    row lock another writer of the cube needs."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:ns, :pk)"), {"ns": 7301, "pk": cube_pk})


def add_change(s: Session, cube_pk: int, record_pks: Iterable[int], op: str) -> None:
    lock_cube_changes(s, cube_pk)  # re-entrant: usually taken at the start already
    now = utcnow()
    s.add_all(ChangeRow(cube_pk=cube_pk, record_pk=pk, op=op, created_at=now) for pk in record_pks)


RECORD_DEFAULTS: dict[str, Any] = {
    "tier": "plaintext",
    "kind": "fact",
    "version": 1,
    "status": "active",
    "importance": 0.5,
    "strength": 1.0,
    "recall_count": 0,
    "embedding_precision": "float32",
    "user_id": None,
    "agent_id": None,
    "session_id": None,
    "event_time": None,
    "valid_from": None,
    "valid_to": None,
    "last_recalled_at": None,
    "embedding": None,
}


def insert_records(s: Session, cube: CubeRow, fields: Sequence[dict[str, Any]]) -> list[RecordRow]:
    """Insert records with their first version and change-log rows; returns the new rows.

    Bulk INSERTs (executemany) rather than the unit of work: at 100 records per call the
    ORM's per-object bookkeeping cost more than the database itself.
    """
    lock_cube_changes(s, cube.pk)
    now = utcnow()
    values = []
    for f in fields:
        v = {**RECORD_DEFAULTS, **f, "cube_pk": cube.pk}
        v.setdefault("id", new_id())
        v.setdefault("created_at", now)
        v.setdefault("updated_at", v["created_at"])
        for key in ("source", "meta"):
            v[key] = dict(v.get(key) or {})
        for key in ("tags", "entities"):
            v[key] = list(v.get(key) or [])
        values.append(v)
    pks = s.scalars(
        insert(RecordRow).returning(RecordRow.pk, sort_by_parameter_order=True), values
    ).all()
    rows = [RecordRow(pk=pk, **v) for pk, v in zip(pks, values, strict=True)]
    s.execute(
        insert(VersionRow),
        [
            {
                "record_pk": r.pk,
                "version": r.version,
                "change": "create",
                "changed_at": r.created_at,
                **{f: getattr(r, f) for f in VERSIONED_FIELDS},
            }
            for r in rows
        ],
    )
    seqs = s.scalars(
        insert(ChangeRow).returning(ChangeRow.seq, sort_by_parameter_order=True),
        [{"cube_pk": cube.pk, "record_pk": r.pk, "op": "upsert", "created_at": now} for r in rows],
    ).all()
    s.info["change_seqs"] = (min(seqs), max(seqs), len(seqs))
    return rows


def get_record(s: Session, tenant_pk: int, record_id: str) -> tuple[RecordRow, str] | None:
    """(record, access) if the tenant owns its cube ("owner") or it was shared ("read")."""
    row = s.scalar(select(RecordRow).where(RecordRow.id == record_id))
    if row is None:
        return None
    if row.cube.tenant_pk == tenant_pk:
        return row, "owner"
    shared = s.scalar(
        select(CubeShareRow.pk).where(
            CubeShareRow.cube_pk == row.cube_pk, CubeShareRow.tenant_pk == tenant_pk
        )
    )
    return (row, "read") if shared is not None else None


def records_by_pks(
    s: Session, pks: Sequence[int], *, with_cube: bool = True
) -> dict[int, RecordRow]:
    """Rows by pk; `with_cube=False` skips joining the cube when the caller already has it."""
    if not len(pks):
        return {}
    q = select(RecordRow).where(RecordRow.pk.in_([int(p) for p in pks]))
    if not with_cube:
        q = q.options(lazyload(RecordRow.cube))
    return {r.pk: r for r in s.scalars(q)}


_RECORD_FIELDS = [
    RecordRow.__table__.c[prop.columns[0].name].label(prop.key)
    for prop in RecordRow.__mapper__.column_attrs
    if prop.key != "embedding"
]


def record_fields_by_pks(s: Session, pks: Sequence[int]) -> dict[int, Row[Any]]:
    """Record fields by pk as plain rows (attribute names as on `RecordRow`, no embedding):
    the recall hot path, without the ORM's per-object bookkeeping."""
    if not len(pks):
        return {}
    table = RecordRow.__table__
    q = select(*_RECORD_FIELDS).where(table.c.pk.in_([int(p) for p in pks]))
    return {r.pk: r for r in s.connection().execute(q)}


def preceding_turns(
    s: Session,
    cube_pk: int,
    session_id: str,
    user_id: str | None,
    *,
    before_pk: int | None = None,
    n: int = 2,
) -> list[tuple[str, dict[str, Any]]]:
    """(content, source) of the last `n` records of a user's session in a cube before
    `before_pk` (all of it when None), oldest first; deleted ones are left out."""
    t = RecordRow.__table__.c
    q = select(t.content, t.source).where(
        t.cube_pk == cube_pk,
        t.session_id == session_id,
        t.user_id.is_(None) if user_id is None else t.user_id == user_id,
        t.status != "deleted",
    )
    if before_pk is not None:
        q = q.where(t.pk < before_pk)
    rows = s.connection().execute(q.order_by(t.pk.desc()).limit(n)).all()
    return [(r.content, dict(r.source or {})) for r in reversed(rows)]


def versions_for(s: Session, record_pk: int) -> list[VersionRow]:
    return list(
        s.scalars(
            select(VersionRow).where(VersionRow.record_pk == record_pk).order_by(VersionRow.version)
        )
    )


def hard_delete_record(s: Session, row: RecordRow) -> None:
    s.execute(delete(VersionRow).where(VersionRow.record_pk == row.pk))
    s.execute(
        delete(EdgeRow).where(
            EdgeRow.cube_pk == row.cube_pk,
            or_(
                (EdgeRow.src_kind == "record") & (EdgeRow.src_pk == row.pk),
                (EdgeRow.dst_kind == "record") & (EdgeRow.dst_pk == row.pk),
            ),
        )
    )
    s.execute(delete(RecordRow).where(RecordRow.pk == row.pk))
    add_change(s, row.cube_pk, [row.pk], "delete")


def set_recalled(s: Session, pks: Sequence[int], at: datetime) -> None:
    s.execute(
        update(RecordRow)
        .where(RecordRow.pk.in_(pks))
        .values(recall_count=RecordRow.recall_count + 1, last_recalled_at=at)
    )


@dataclass
class RecordQuery:
    """Conditions on records; every field left at its default matches everything."""

    statuses: tuple[str, ...] = ("active",)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    kinds: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    valid_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def is_trivial(self) -> bool:
        return self == RecordQuery(statuses=self.statuses)

    def apply(self, q):
        R = RecordRow
        if self.statuses:
            q = q.where(R.status.in_(self.statuses))
        for col, val in (
            (R.user_id, self.user_id),
            (R.agent_id, self.agent_id),
            (R.session_id, self.session_id),
        ):
            if val is not None:
                q = q.where(col == val)
        if self.kinds:
            q = q.where(R.kind.in_(self.kinds))
        if self.tiers:
            q = q.where(R.tier.in_(self.tiers))
        if self.since is not None:
            q = q.where(func.coalesce(R.event_time, R.created_at) >= self.since)
        if self.until is not None:
            q = q.where(func.coalesce(R.event_time, R.created_at) <= self.until)
        if self.valid_at is not None:
            q = q.where(or_(R.valid_from.is_(None), R.valid_from <= self.valid_at))
            q = q.where(or_(R.valid_to.is_(None), R.valid_to > self.valid_at))
        return q

    def matches(self, row: RecordRow) -> bool:
        """The same conditions in Python, for rows already loaded (tags/metadata included)."""
        if self.statuses and row.status not in self.statuses:
            return False
        for attr in ("user_id", "agent_id", "session_id"):
            want = getattr(self, attr)
            if want is not None and getattr(row, attr) != want:
                return False
        if self.kinds and row.kind not in self.kinds:
            return False
        if self.tiers and row.tier not in self.tiers:
            return False
        when = row.event_time or row.created_at
        if self.since is not None and when < self.since:
            return False
        if self.until is not None and when > self.until:
            return False
        if self.valid_at is not None:
            if row.valid_from is not None and row.valid_from > self.valid_at:
                return False
            if row.valid_to is not None and row.valid_to <= self.valid_at:
                return False
        if self.tags and not set(self.tags) <= set(row.tags or ()):
            return False
        meta = row.meta or {}
        return all(meta.get(k) == v for k, v in self.metadata.items())


def query_records(
    s: Session, cube_pk: int, rq: RecordQuery, *, after_pk: int = 0, limit: int | None = None
) -> list[RecordRow]:
    """Records matching `rq` in pk order after a cursor; tag and metadata checks run in Python
    so the same code works on every database's JSON flavour."""
    out: list[RecordRow] = []
    cursor = after_pk
    chunk = max(limit or 0, 500)
    while True:
        q = rq.apply(select(RecordRow).where(RecordRow.cube_pk == cube_pk, RecordRow.pk > cursor))
        batch = list(s.scalars(q.order_by(RecordRow.pk).limit(chunk)))
        for r in batch:
            if rq.matches(r):
                out.append(r)
                if limit is not None and len(out) >= limit:
                    return out
        if len(batch) < chunk:
            return out
        cursor = batch[-1].pk


def matching_pks(s: Session, cube_pk: int, rq: RecordQuery) -> np.ndarray:
    if not rq.tags and not rq.metadata:
        q = rq.apply(select(RecordRow.pk).where(RecordRow.cube_pk == cube_pk))
        return np.fromiter(s.scalars(q), dtype=np.int64)
    return np.array([r.pk for r in query_records(s, cube_pk, rq)], dtype=np.int64)


def iter_cube_records(s: Session, cube_pk: int, *, batch: int = 500) -> Iterator[RecordRow]:
    """Every record of a cube (any status) with its embedding, in pk order, streamed."""
    cursor = 0
    while True:
        rows = list(
            s.scalars(
                select(RecordRow)
                .options(undefer(RecordRow.embedding))
                .where(RecordRow.cube_pk == cube_pk, RecordRow.pk > cursor)
                .order_by(RecordRow.pk)
                .limit(batch)
            )
        )
        yield from rows
        if len(rows) < batch:
            return
        cursor = rows[-1].pk


def entities_for_cube(s: Session, cube_pk: int) -> list[EntityRow]:
    return list(
        s.scalars(select(EntityRow).where(EntityRow.cube_pk == cube_pk).order_by(EntityRow.pk))
    )


def edges_for_cube(s: Session, cube_pk: int) -> list[EdgeRow]:
    return list(s.scalars(select(EdgeRow).where(EdgeRow.cube_pk == cube_pk).order_by(EdgeRow.pk)))


# ---- change log and vectors --------------------------------------------------------------------


def max_change_seq(s: Session, cube_pk: int) -> int:
    return int(s.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.cube_pk == cube_pk)) or 0)


def changes_since(s: Session, cube_pk: int, seq: int) -> tuple[int, list[int]]:
    """(newest seq, distinct record pks changed after `seq`)."""
    rows = s.execute(
        select(ChangeRow.seq, ChangeRow.record_pk).where(
            ChangeRow.cube_pk == cube_pk, ChangeRow.seq > seq
        )
    ).all()
    if not rows:
        return seq, []
    return max(r[0] for r in rows), sorted({r[1] for r in rows})


def active_vectors(
    s: Session, cube_pk: int, pks: Sequence[int] | None = None, *, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pks, vectors) of the active records with an embedding, optionally among `pks`."""
    q = select(RecordRow.pk, RecordRow.embedding, RecordRow.embedding_precision).where(
        RecordRow.cube_pk == cube_pk,
        RecordRow.status == "active",
        RecordRow.embedding.is_not(None),
    )
    if pks is not None:
        q = q.where(RecordRow.pk.in_([int(p) for p in pks]))
    rows = s.execute(q.order_by(RecordRow.pk)).all()
    if not rows:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if all(r[2] == "float32" for r in rows):
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
    else:  # some faded records keep int8 or 1-bit vectors
        vecs = np.stack([decode_stored(r[1], r[2], dim) for r in rows])
    return ids, vecs


def active_text_rows(s: Session, cube_pk: int, pks: Sequence[int] | None = None) -> list[Row[Any]]:
    """The fields the side index reads (content, speaker, session, time, entities) of the
    active records, optionally among `pks`, in pk order."""
    R = RecordRow
    q = select(R.pk, R.content, R.source, R.session_id, R.event_time, R.entities, R.kind).where(
        R.cube_pk == cube_pk, R.status == "active", R.tier == "plaintext"
    )
    if pks is not None:
        q = q.where(R.pk.in_([int(p) for p in pks]))
    return list(s.execute(q.order_by(R.pk)).all())


def link_entities(
    s: Session, cube_pk: int, mentions: Sequence[tuple[int, Sequence[tuple[str, str, str]]]]
) -> None:
    """Entity nodes and `mentions` edges for records: `mentions` pairs a record pk with its
    (name, normalized, type) entities. Existing nodes are reused; a record's old mention
    edges are replaced (its text may have changed)."""
    if not mentions:
        return
    mentions = [(pk, [(n, norm[:512], t) for n, norm, t in ents]) for pk, ents in mentions]
    wanted = {(norm, typ): name for _, ents in mentions for name, norm, typ in ents}

    def lookup(norms: list[str]) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for i in range(0, len(norms), 500):
            q = select(EntityRow.pk, EntityRow.normalized, EntityRow.type).where(
                EntityRow.cube_pk == cube_pk, EntityRow.normalized.in_(norms[i : i + 500])
            )
            found.update({(n, t): pk for pk, n, t in s.execute(q)})
        return found

    known = lookup(sorted({n for n, _ in wanted}))
    fresh = [
        {"cube_pk": cube_pk, "name": name[:512], "normalized": norm, "type": typ}
        for (norm, typ), name in wanted.items()
        if (norm, typ) not in known
    ]
    if fresh:
        # Two writers may name the same new entity at once (on PostgreSQL they do not
        # queue on one lock): the second one's insert does nothing and reads the first's.
        upsert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        t = EntityRow.__table__
        for k in range(0, len(fresh), 1000):  # bounded statements: SQLite caps bound values
            s.execute(
                upsert(t)
                .values(fresh[k : k + 1000])
                .on_conflict_do_nothing(index_elements=[t.c.cube_pk, t.c.normalized, t.c.type])
            )
        known.update(lookup(sorted({e["normalized"] for e in fresh})))
    s.execute(
        delete(EdgeRow).where(
            EdgeRow.cube_pk == cube_pk,
            EdgeRow.type == "mentions",
            EdgeRow.src_kind == "record",
            EdgeRow.src_pk.in_([pk for pk, _ in mentions]),
        )
    )
    s.add_all(
        EdgeRow(
            cube_pk=cube_pk,
            type="mentions",
            src_kind="record",
            src_pk=pk,
            dst_kind="entity",
            dst_pk=known[(norm, typ)],
        )
        for pk, ents in mentions
        for _, norm, typ in ents
    )
