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
from sqlalchemy.orm import Session, undefer

from retrieval.analyze import speaker_of
from retrieval.facts import find_fact, same_value
from store import repository as repo
from store.database import Database
from store.orm import CubeRow, EdgeRow, RecordRow
from store.precision import decode_stored

__all__ = ["MIN_SIMILARITY", "chain_pks", "key_of", "resolve_keys", "supersede_pass"]

MIN_SIMILARITY = 0.2


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


def resolve_keys(s: Session, cube: CubeRow, keys: Iterable[str], now: datetime) -> int:
    """Close superseded records among those sharing each key; returns how many were closed."""
    closed = 0
    for key in sorted({k for k in keys if k}):
        rows = list(
            s.scalars(
                select(RecordRow)
                .options(undefer(RecordRow.embedding))
                .where(
                    RecordRow.cube_pk == cube.pk,
                    RecordRow.fact_key == key,
                    RecordRow.status == "active",
                )
            )
        )
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: (r.valid_from or r.created_at, r.pk))
        values = [_value(r) for r in rows]
        units = [_unit(r, cube.embedding_dim) for r in rows]
        for i, old in enumerate(rows):
            if values[i] is None:
                continue
            start = old.valid_from or old.created_at
            for j in range(i + 1, len(rows)):
                new = rows[j]
                new_start = new.valid_from or new.created_at
                if values[j] is None or new_start <= start or same_value(values[i], values[j]):
                    continue
                ui, uj = units[i], units[j]
                if ui is not None and uj is not None and float(ui @ uj) < MIN_SIMILARITY:
                    continue
                if old.valid_to is None or old.valid_to > new_start:
                    _close(s, cube, old, new, new_start, now)
                    closed += 1
                break
    return closed


def _close(
    s: Session, cube: CubeRow, old: RecordRow, new: RecordRow, until: datetime, now: datetime
) -> None:
    old.valid_to = until
    old.version += 1
    old.updated_at = now
    s.flush()
    version = repo.snapshot_version(old, "supersede", now)
    version.cause_id = new.id
    s.add(version)
    exists = s.scalar(
        select(EdgeRow.pk).where(
            EdgeRow.cube_pk == cube.pk,
            EdgeRow.type == "supersedes",
            EdgeRow.src_pk == new.pk,
            EdgeRow.dst_pk == old.pk,
        )
    )
    if exists is None:
        s.add(
            EdgeRow(
                cube_pk=cube.pk,
                type="supersedes",
                src_kind="record",
                src_pk=new.pk,
                dst_kind="record",
                dst_pk=old.pk,
                created_at=now,
            )
        )
    repo.add_change(s, cube.pk, [old.pk], "upsert")


def supersede_pass(db: Database, cube: CubeRow, now: datetime) -> dict[str, int]:
    """Key the records that have no key yet, then resolve every key held twice or more."""
    keyed = 0
    with db.write() as s:
        todo = s.execute(
            select(RecordRow.pk, RecordRow.content, RecordRow.source, RecordRow.user_id).where(
                RecordRow.cube_pk == cube.pk, RecordRow.fact_key.is_(None)
            )
        ).all()
        for pk, content, source, user_id in todo:
            s.execute(
                update(RecordRow)
                .where(RecordRow.pk == pk)
                .values(fact_key=key_of(content, source, user_id))
            )
            keyed += 1
    with db.write() as s:
        keys = s.scalars(
            select(RecordRow.fact_key)
            .where(
                RecordRow.cube_pk == cube.pk,
                RecordRow.status == "active",
                RecordRow.fact_key.is_not(None),
                RecordRow.fact_key != "",
            )
            .group_by(RecordRow.fact_key)
            .having(func.count() > 1)
        ).all()
        closed = resolve_keys(s, cube, keys, now)
    return {"fact_keyed": keyed, "superseded": closed}


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
