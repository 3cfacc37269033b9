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

from memsvc.retrieval.analyze import speaker_of
from memsvc.retrieval.facts import find_fact, same_value
from memsvc.store.data import CubeData, RecordData
from memsvc.store.database import Database
from memsvc.store.precision import decode_stored
from memsvc.store.tx import Tx

__all__ = ["MIN_SIMILARITY", "chain_pks", "key_of", "resolve_records", "supersede_pass"]

MIN_SIMILARITY = 0.2
WINDOW = 50  # statements of one fact read on each side of a new one


def key_of(content: str, source: dict | None, user_id: str | None) -> str:
    """The record's fact key, or "" when it states no fact (so it is not looked at again)."""
    fact = find_fact(content, speaker=speaker_of(source), user=user_id)
    return fact.key if fact else ""


def _value(rec: RecordData) -> str | None:
    fact = find_fact(rec.content, speaker=speaker_of(rec.source), user=rec.user_id)
    return fact.value if fact else None


class _Units:
    """Records' unit embeddings, each read once per resolution (they do not change in it)."""

    def __init__(self, tx: Tx, dim: int) -> None:
        self._tx = tx
        self._dim = dim
        self._seen: dict[int, np.ndarray | None] = {}

    def __call__(self, rec: RecordData) -> np.ndarray | None:
        if rec.pk not in self._seen:
            self._seen[rec.pk] = self._read(rec)
        return self._seen[rec.pk]

    def _read(self, rec: RecordData) -> np.ndarray | None:
        data = self._tx.lifecycle.embedding(rec.pk)
        if data is None:
            return None
        v = decode_stored(data, rec.embedding_precision, self._dim)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else None


def _start(rec: RecordData) -> datetime:
    return rec.valid_from or rec.created_at


def _differs(a: RecordData, b: RecordData, unit: _Units) -> bool:
    """Different values of the fact, and similar enough texts."""
    va, vb = _value(a), _value(b)
    if va is None or vb is None or same_value(va, vb):
        return False
    ua, ub = unit(a), unit(b)
    return ua is None or ub is None or float(ua @ ub) >= MIN_SIMILARITY


def resolve_records(tx: Tx, cube: CubeData, pks: Iterable[int], now: datetime) -> int:
    """Supersession for records just written (or keyed): each closes the still-open older
    statements of its fact with another value, and is itself closed by the first later one
    with another value (a backfilled statement). Only the `WINDOW` nearest statements on
    each side are read, so a fact restated thousands of times costs the same as one."""
    closed = 0
    wanted = sorted(set(pks))
    # the records as this resolution left them: closing one sets its valid_to
    current = {
        pk: r
        for pk, r in tx.lifecycle.records(wanted).items()
        if r.fact_key and r.status == "active"
    }
    if not current:
        return 0
    unit = _Units(tx, cube.embedding_dim)
    # per key: how many statements and the latest start, so a fact stated once costs no
    # further query and the later side is read only when something is later (a backfill)
    stats = tx.lifecycle.fact_stats(cube.pk, {r.fact_key for r in current.values()})
    for pk in sorted(current):
        row = current[pk]
        n, latest = stats.get(row.fact_key, (1, None))
        if n < 2:
            continue
        start = _start(row)
        # the nearest older statements, open or not (filtering on valid_to in SQL would walk
        # every closed statement of the fact); an embedding is read only for a candidate
        window = tx.lifecycle.earlier_statements(cube.pk, row.fact_key, row.pk, start, limit=WINDOW)
        for old_pk, old_to in window:
            if old_to is not None and old_to <= start:
                continue  # closed before this statement: most of the window, never loaded
            old = tx.lifecycle.get(old_pk)
            if old is not None and _differs(old, row, unit):
                _close(tx, cube, old, row, start, now, current)
                closed += 1
        if latest is None or latest <= start:
            continue
        newer = tx.lifecycle.later_statements(cube.pk, row.fact_key, row.pk, start, limit=WINDOW)
        for new in newer:
            if _differs(row, new, unit):
                row = current[pk]
                if row.valid_to is None or row.valid_to > _start(new):
                    _close(tx, cube, row, new, _start(new), now, current)
                    closed += 1
                break
    return closed


def _close(
    tx: Tx,
    cube: CubeData,
    old: RecordData,
    new: RecordData,
    until: datetime,
    now: datetime,
    current: dict[int, RecordData],
) -> None:
    closed = tx.records.change(
        old.pk, {"valid_to": until}, change="supersede", at=now, cause_id=new.id
    )
    if old.pk in current:
        current[old.pk] = closed
    tx.graph.add_edge_once(cube.pk, "supersedes", new.pk, old.pk, now)


def supersede_pass(db: Database, cube: CubeData, now: datetime) -> dict[str, int]:
    """Key the records that have no key yet (imported, or written before keys existed) and
    resolve them; records written since are resolved by `add`/`update` themselves."""
    with db.writing() as tx:
        tx.changes.lock(cube.pk)
        todo = tx.lifecycle.unkeyed(cube.pk)
        for pk, content, source, user_id in todo:
            tx.lifecycle.set_fact_key(pk, key_of(content, source, user_id))
        closed = resolve_records(tx, cube, [r[0] for r in todo], now)
    return {"fact_keyed": len(todo), "superseded": closed}


def chain_pks(tx: Tx, cube_pk: int, record_pk: int) -> list[int]:
    """pks of the supersession chain through a record, oldest first."""
    back: dict[int, int] = {}
    fwd: dict[int, int] = {}
    for src, dst in tx.graph.edge_pairs(cube_pk, "supersedes"):
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
