"""Forgetting: recalls reinforce memories; maintenance demotes and archives faded ones.

The formula lives in retrieval/retention.py. Here are its two effects on the database:
  - `Reinforcer` collects the records each recall returned and writes their new strength,
    recall count and last_recalled_at in one transaction every `flush_seconds` (0: at once),
    so a burst of recalls costs one write, not one per hit. That write runs on a thread of its
    own, not in the recall that found it due (it cost that one recall hundreds of ms under
    load). What is still buffered when a process dies is lost; that is a few seconds of
    reinforcement, never a user's write.
  - `forget_pass` moves each active, unpinned record of a cube to the state its retention
    calls for: stored vector float32 -> int8 -> 1-bit, then archived. A record whose retention
    rose again (it was recalled) is re-embedded at full precision. Nothing is deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from memsvc.retrieval.analyze import embedding_text
from memsvc.retrieval.retention import ForgetPolicy, reinforced, retention, target_state
from memsvc.store.data import CubeData, RecordData
from memsvc.store.database import Database
from memsvc.store.precision import PRECISIONS, decode_stored, encode_stored
from memsvc.turn_context import context_of

__all__ = ["Reinforcer", "forget_pass"]

log = logging.getLogger(__name__)

_RANK = {p: i for i, p in enumerate(PRECISIONS)}  # float32 0, int8 1, binary 2


class Reinforcer:
    def __init__(self, db: Database, policy: ForgetPolicy, *, flush_seconds: float = 2.0) -> None:
        self.db = db
        self.policy = policy
        self.flush_seconds = flush_seconds
        self._pending: dict[int, tuple[int, datetime]] = {}  # pk -> (recalls, last time)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time; `flush` waits for it
        self._writer: threading.Thread | None = None
        self._flushed = time.monotonic()

    def note(self, pks: Sequence[int], at: datetime) -> None:
        with self._lock:
            for pk in pks:
                n, _ = self._pending.get(pk, (0, at))
                self._pending[pk] = (n + 1, at)
            due = time.monotonic() - self._flushed >= self.flush_seconds
            if due and self.flush_seconds > 0:
                if self._writer is not None and self._writer.is_alive():
                    return
                self._flushed = time.monotonic()  # no second writer for this interval
                self._writer = threading.Thread(
                    target=self._flush_logged, name="memsvc-reinforce", daemon=True
                )
                self._writer.start()
                return
        if due:
            self.flush()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:  # a few seconds of reinforcement; the next flush goes on
            log.exception("writing reinforcement failed")

    def flush(self) -> int:
        """Write what is buffered (after any write in progress); returns how many records
        were reinforced."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._flushed = time.monotonic()
            if not pending:
                return 0
            with self.db.writing() as tx:
                hits = []
                for rec in tx.lifecycle.reinforcement_inputs(list(pending)):
                    n, at = pending[rec.pk]
                    r = retention(rec, at, self.policy)
                    hits.append((rec, reinforced(rec.strength, r, self.policy), n, at))
                tx.lifecycle.reinforce(hits)
            return len(pending)


def forget_pass(
    db: Database,
    cube: CubeData,
    now: datetime,
    policy: ForgetPolicy,
    encode: Callable[[list[str]], np.ndarray],
    *,
    batch: int = 1000,
) -> dict[str, int]:
    """Counts of records demoted to int8 / binary, promoted back to float32, and archived."""
    counts = {"demoted_int8": 0, "demoted_binary": 0, "promoted": 0, "archived": 0}
    after = 0
    while True:
        with db.writing() as tx:
            tx.changes.lock(cube.pk)
            rows = tx.lifecycle.fading(cube.pk, after_pk=after, limit=batch)
            if not rows:
                return counts
            after = rows[-1].pk
            changed: list[int] = []
            reencoded: list[tuple[int, bytes, str]] = []  # (pk, stored vector, precision)
            promote: list[tuple[RecordData, str]] = []
            for row in rows:
                state = target_state(retention(row, now, policy), policy)
                if state == "archive":
                    tx.records.change(row.pk, {"status": "archived"}, change="archive", at=now)
                    counts["archived"] += 1
                elif row.embedding_precision not in _RANK:
                    continue  # a precision this version does not know: leave it alone
                elif (
                    _RANK[state] > _RANK[row.embedding_precision]
                    and (stored := tx.lifecycle.embedding(row.pk)) is not None
                ):
                    vec = decode_stored(stored, row.embedding_precision, cube.embedding_dim)
                    reencoded.append((row.pk, encode_stored(vec, state), state))
                    counts[f"demoted_{state}"] += 1
                    changed.append(row.pk)
                elif _RANK[state] < _RANK[row.embedding_precision]:
                    promote.append((row, state))
            if promote:  # the lost precision cannot be decoded back: embed the text again
                vecs = encode(
                    [
                        embedding_text(r.content, r.source, r.event_time, context_of(tx, r))
                        for r, _ in promote
                    ]
                )
                for (r, state), v in zip(promote, vecs, strict=True):
                    reencoded.append((r.pk, encode_stored(v, state), state))
                    changed.append(r.pk)
                counts["promoted"] += len(promote)
            tx.lifecycle.set_embeddings(reencoded)
            if changed:
                tx.changes.append(cube.pk, changed, "upsert")
