"""Records: bulk insert with first versions and change-log rows, lookups, hard delete."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, lazyload, undefer

from memsvc.store.data import CubeData, RecordData, new_id
from memsvc.store.errors import StoreError
from memsvc.store.orm import (
    ChangeRow,
    CubeRow,
    CubeShareRow,
    EdgeRow,
    EntityRow,
    RecallEventRow,
    RecordRow,
    VersionRow,
    utcnow,
)
from memsvc.store.repos.changes import add_change, lock_cube_changes
from memsvc.store.repos.versions import VERSIONED_FIELDS, new_version

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
    "key_embeddings": None,
    "time_anchor": None,
}


def insert_records(
    s: Session, cube: CubeRow | CubeData, fields: Sequence[dict[str, Any]]
) -> tuple[list[RecordRow], tuple[int, int, int]]:
    """Insert records with their first version and change-log rows; returns the new rows and
    their change sequence numbers (first, last, count) for the indexes.

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
    return rows, (min(seqs), max(seqs), len(seqs))


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
    if prop.key not in ("embedding", "key_embeddings", "time_anchor")
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


def hard_delete_record(s: Session, row: RecordRow) -> None:
    """The record, its versions, its graph edges and its recall events; the change log
    keeps a "delete" (no text) for the indexes."""
    s.execute(delete(VersionRow).where(VersionRow.record_pk == row.pk))
    s.execute(delete(RecallEventRow).where(RecallEventRow.record_pk == row.pk))
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


def drop_orphan_entities(s: Session, cube_pk: int) -> int:
    """Delete the cube's entities no edge touches any more: their names are text of
    records gone for good (or of what an update replaced). Returns how many."""
    e = EdgeRow
    src = exists().where(e.cube_pk == cube_pk, e.src_kind == "entity", e.src_pk == EntityRow.pk)
    dst = exists().where(e.cube_pk == cube_pk, e.dst_kind == "entity", e.dst_pk == EntityRow.pk)
    res = s.execute(delete(EntityRow).where(EntityRow.cube_pk == cube_pk, ~src, ~dst))
    return int(res.rowcount or 0)


def set_recalled(s: Session, pks: Sequence[int], at: datetime) -> None:
    s.execute(
        update(RecordRow)
        .where(RecordRow.pk.in_(pks))
        .values(recall_count=RecordRow.recall_count + 1, last_recalled_at=at)
    )


def iter_cube_records(s: Session, cube_pk: int, *, batch: int = 500) -> Iterator[RecordRow]:
    """Every record of a cube (any status) with its embeddings, in pk order, streamed."""
    cursor = 0
    while True:
        rows = list(
            s.scalars(
                select(RecordRow)
                .options(undefer(RecordRow.embedding), undefer(RecordRow.key_embeddings))
                .where(RecordRow.cube_pk == cube_pk, RecordRow.pk > cursor)
                .order_by(RecordRow.pk)
                .limit(batch)
            )
        )
        yield from rows
        if len(rows) < batch:
            return
        cursor = rows[-1].pk


class Records:
    """Record reads and changes, for the core. Every change goes through `change` (or
    `insert` / `hard_delete`), which versions it and appends to the change log."""

    def __init__(self, s: Session, *, is_sqlite: bool) -> None:
        self._s = s
        self._is_sqlite = is_sqlite

    def insert(
        self, cube: CubeData, fields: Sequence[dict[str, Any]]
    ) -> tuple[list[RecordData], tuple[int, int, int]]:
        """New records, in input order, and their change sequence numbers."""
        rows, seqs = insert_records(self._s, cube, fields)
        return [RecordData.of(r) for r in rows], seqs

    def get(self, tenant_pk: int, record_id: str) -> tuple[RecordData, str] | None:
        """(record, access) if the tenant owns its cube ("owner") or it was shared ("read")."""
        found = get_record(self._s, tenant_pk, record_id)
        return None if found is None else (RecordData.of(found[0]), found[1])

    def get_with_cube(
        self, tenant_pk: int, record_id: str
    ) -> tuple[RecordData, CubeData, str] | None:
        """`get` with the record's cube (joined in the same read)."""
        found = get_record(self._s, tenant_pk, record_id)
        if found is None:
            return None
        return RecordData.of(found[0]), CubeData.of(found[0].cube), found[1]

    def for_write(self, pk: int) -> RecordData | None:
        """The record as the last writer left it, its cube's change-log lock held first (see
        `lock_cube_changes`): what a read-modify-write starts from. The caller has already
        checked access in this transaction, so the row usually comes from the session."""
        row = self._s.get(RecordRow, pk)
        if row is None:
            return None
        lock_cube_changes(self._s, row.cube_pk)
        if not self._is_sqlite:  # read before the lock: another writer may have won
            self._s.refresh(row)
        return RecordData.of(row)

    def by_pks(self, pks: Sequence[int]) -> dict[int, RecordData]:
        return {pk: RecordData.of(r) for pk, r in records_by_pks(self._s, pks).items()}

    def change(
        self,
        pk: int,
        values: dict[str, Any],
        *,
        change: str,
        at: datetime,
        cause_id: str | None = None,
        op: str | None = "upsert",
    ) -> RecordData:
        """Set fields (`embedding` bytes included), then version the record and log the
        change (`op=None`: no index sees it)."""
        row = self._s.get(RecordRow, pk)
        if row is None:
            raise StoreError(f"record {pk} vanished during the write")
        for attr, value in values.items():
            setattr(row, attr, value)
        new_version(self._s, row, change, at, cause_id=cause_id, op=op)
        return RecordData.of(row)

    def hard_delete(self, pk: int) -> None:
        row = self._s.get(RecordRow, pk)
        if row is not None:
            hard_delete_record(self._s, row)

    def drop_orphan_entities(self, cube_pk: int) -> int:
        return drop_orphan_entities(self._s, cube_pk)

    def tier_records(self, cube_pk: int) -> list[RecordData]:
        """The cube's activation and parametric records in any status (a deleted one keeps
        the text it was built from in its content and history), in pk order."""
        q = (
            select(RecordRow)
            .where(RecordRow.cube_pk == cube_pk, RecordRow.tier != "plaintext")
            .order_by(RecordRow.pk)
        )
        return [RecordData.of(r) for r in self._s.scalars(q)]

    def preceding_turns(
        self,
        cube_pk: int,
        session_id: str,
        user_id: str | None,
        *,
        before_pk: int | None = None,
        n: int = 2,
    ) -> list[tuple[str, dict[str, Any]]]:
        return preceding_turns(self._s, cube_pk, session_id, user_id, before_pk=before_pk, n=n)

    def set_recalled(self, pks: Sequence[int], at: datetime) -> None:
        set_recalled(self._s, pks, at)

    def same_text(
        self, cube_pk: int, contents: Sequence[str], user_id: str | None, session_id: str | None
    ) -> dict[str, str]:
        """Of `contents`, those an active plaintext record of the cube holds word for word
        for this user and session, with that record's id (the oldest one's)."""
        t = RecordRow.__table__.c
        out: dict[str, str] = {}
        wanted = list(dict.fromkeys(contents))
        for i in range(0, len(wanted), 500):
            q = (
                select(t.content, t.id)
                .where(
                    t.cube_pk == cube_pk,
                    t.status == "active",
                    t.tier == "plaintext",
                    t.user_id == user_id if user_id is not None else t.user_id.is_(None),
                    t.session_id == session_id
                    if session_id is not None
                    else t.session_id.is_(None),
                    t.content.in_(wanted[i : i + 500]),
                )
                .order_by(t.pk.desc())
            )
            out.update((content, id_) for content, id_ in self._s.connection().execute(q))
        return out

    def active_plaintext(self, pks: Sequence[int]) -> set[int]:
        """The pks among `pks` of active plaintext records (what a cube's readers see)."""
        t = RecordRow.__table__.c
        out: set[int] = set()
        wanted = [int(p) for p in pks]
        for i in range(0, len(wanted), 500):
            q = select(t.pk).where(
                t.pk.in_(wanted[i : i + 500]), t.status == "active", t.tier == "plaintext"
            )
            out.update(self._s.connection().execute(q).scalars())
        return out
