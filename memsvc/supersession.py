"""Supersession: a newer statement of the same fact closes the older one, losing nothing.

The heuristic, in four tests:
  1. entity + attribute: both records state a fact (retrieval/facts.py) with the same subject
     and attribute, their `fact_key` ("ana|residence");
  2. value: the values differ ("paris" vs "berlin"; "paris" and "paris, france" are one);
  3. similarity: their embeddings' cosine is at least `MIN_SIMILARITY`, a loose check that
     the two really talk about the same thing;
  4. time order: the newer one's valid_from (its event time) is strictly later.
The older record then gets valid_to = the newer one's valid_from, a version with change
"supersede" whose `cause_id` names the newer record, and a `supersedes` edge newer -> older.
Recall at the current time no longer returns it; recall `at` an earlier time does.
A record restating the same value ("still in Paris") supersedes nothing; each record is
closed by the first later record that states a different value, so a chain of updates
Paris -> Berlin -> Rome gives three back-to-back validity intervals.

It runs inside `add`/`update` for the keys they touch (so a recall right after sees it) and
in maintenance over every key (records imported or written before this existed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from memsvc.retrieval.analyze import speaker_of
from memsvc.retrieval.facts import find_fact, same_value
from memsvc.store import repository as repo
from memsvc.store.database import Database
from memsvc.store.orm import CubeRow, EdgeRow, RecordRow
from memsvc.store.precision import decode_stored

__all__ = ["MIN_SIMILARITY", "chain_pks", "key_of", "resolve_records", "supersede_pass"]

MIN_SIMILARITY = 0.2
WINDOW = 50  # statements of one fact read on each side of a new one


def key_of(content: str, source: dict | None, user_id: str | None) -> str:
    """The record's fact key, or "" when it states no fact (so it is not looked at again)."""
    fact = find_fact(content, speaker=speaker_of(source), user=user_id)
    return fact.key if fact else ""


def _value(row: RecordRow) -> str | None:
    fact = find_fact(row.content, speaker=speaker_of(row.source), user=row.user_id)
    return fact.value if fact else None


def _unit(row: RecordRow, dim: int) -> np.ndarray | None:
    if row.embedding is None:
        return None
    v = decode_stored(row.embedding, row.embedding_precision, dim)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


def _start(row: RecordRow) -> datetime:
    return row.valid_from or row.created_at


def _same_key(cube: CubeRow, row: RecordRow, *cols):  # type: ignore[no-untyped-def]
    return select(*(cols or (RecordRow,))).where(
        RecordRow.cube_pk == cube.pk,
        RecordRow.fact_key == row.fact_key,
        RecordRow.status == "active",
        RecordRow.pk != row.pk,
    )


def _differs(a: RecordRow, b: RecordRow, dim: int) -> bool:
    """Different values of the fact, and similar enough texts."""
    va, vb = _value(a), _value(b)
    if va is None or vb is None or same_value(va, vb):
        return False
    ua, ub = _unit(a, dim), _unit(b, dim)
    return ua is None or ub is None or float(ua @ ub) >= MIN_SIMILARITY


def resolve_records(s: Session, cube: CubeRow, pks: Iterable[int], now: datetime) -> int:
    """Supersession for records just written (or keyed): each closes the still-open older
    statements of its fact with another value, and is itself closed by the first later one
    with another value (a backfilled statement). Only the `WINDOW` nearest statements on
    each side are read, so a fact restated thousands of times costs the same as one."""
    closed = 0
    wanted = sorted(set(pks))
    rows = [
        r
        for i in range(0, len(wanted), 500)
        for r in s.scalars(select(RecordRow).where(RecordRow.pk.in_(wanted[i : i + 500])))
        if r.fact_key and r.status == "active"
    ]
    if not rows:
        return 0
    # per key: how many statements and the latest start, so a fact stated once costs no
    # further query and the later side is read only when something is later (a backfill)
    stats = {
        key: (int(n), latest)
        for key, n, latest in s.execute(
            select(RecordRow.fact_key, func.count(), func.max(RecordRow.valid_from))
            .where(
                RecordRow.cube_pk == cube.pk,
                RecordRow.fact_key.in_({r.fact_key for r in rows}),
                RecordRow.status == "active",
            )
            .group_by(RecordRow.fact_key)
        )
    }
    for row in sorted(rows, key=lambda r: r.pk):
        n, latest = stats.get(row.fact_key, (1, None))
        if n < 2:
            continue
        start = _start(row)
        # the nearest older statements, open or not (filtering on valid_to in SQL would walk
        # every closed statement of the fact); an embedding is read only for a candidate
        window = s.execute(
            _same_key(cube, row, RecordRow.pk, RecordRow.valid_to)
            .where(RecordRow.valid_from < start)
            .order_by(RecordRow.valid_from.desc(), RecordRow.pk.desc())
            .limit(WINDOW)
        ).all()
        for old_pk, old_to in window:
            if old_to is not None and old_to <= start:
                continue  # closed before this statement: most of the window, never loaded
            old = s.get(RecordRow, old_pk)
            if old is not None and _differs(old, row, cube.embedding_dim):
                _close(s, cube, old, row, start, now)
                closed += 1
        if latest is None or latest <= start:
            continue
        newer = s.scalars(
            _same_key(cube, row)
            .where(RecordRow.valid_from > start)
            .order_by(RecordRow.valid_from, RecordRow.pk)
            .limit(WINDOW)
        ).all()
        for new in newer:
            if _differs(row, new, cube.embedding_dim):
                if row.valid_to is None or row.valid_to > _start(new):
                    _close(s, cube, row, new, _start(new), now)
                    closed += 1
                break
    return closed


def _close(
    s: Session, cube: CubeRow, old: RecordRow, new: RecordRow, until: datetime, now: datetime
) -> None:
    old.valid_to = until
    repo.new_version(s, old, "supersede", now, cause_id=new.id)
    exists = s.scalar(
        select(EdgeRow.pk).where(
            EdgeRow.cube_pk == cube.pk,
            EdgeRow.type == "supersedes",
            EdgeRow.src_pk == new.pk,
            EdgeRow.dst_pk == old.pk,
        )
    )
    if exists is None:
        s.add(repo.graph_edge(cube.pk, "supersedes", new.pk, old.pk, now))


def supersede_pass(db: Database, cube: CubeRow, now: datetime) -> dict[str, int]:
    """Key the records that have no key yet (imported, or written before keys existed) and
    resolve them; records written since are resolved by `add`/`update` themselves."""
    with db.write() as s:
        repo.lock_cube_changes(s, cube.pk)
        todo = s.execute(
            select(RecordRow.pk, RecordRow.content, RecordRow.source, RecordRow.user_id).where(
                RecordRow.cube_pk == cube.pk,
                RecordRow.fact_key.is_(None),
                RecordRow.tier == "plaintext",
            )
        ).all()
        for pk, content, source, user_id in todo:
            s.execute(
                update(RecordRow)
                .where(RecordRow.pk == pk)
                .values(fact_key=key_of(content, source, user_id))
            )
        s.flush()
        closed = resolve_records(s, cube, [r[0] for r in todo], now)
    return {"fact_keyed": len(todo), "superseded": closed}


def chain_pks(s: Session, cube_pk: int, record_pk: int) -> list[int]:
    """pks of the supersession chain through a record, oldest first."""
    back: dict[int, int] = {}
    fwd: dict[int, int] = {}
    for src, dst in s.execute(
        select(EdgeRow.src_pk, EdgeRow.dst_pk)
        .where(EdgeRow.cube_pk == cube_pk, EdgeRow.type == "supersedes")
        .order_by(EdgeRow.pk)
    ):
        back[src] = dst
        fwd[dst] = src
    head = record_pk
    seen = {head}
    while head in back and back[head] not in seen:
        head = back[head]
        seen.add(head)
    out = [head]
    while out[-1] in fwd and fwd[out[-1]] not in out:
        out.append(fwd[out[-1]])
    return out
