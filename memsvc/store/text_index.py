"""One cube's in-memory side index: BM25 postings, entity mentions, sessions and time anchors.

It is kept in step with the database exactly like the vector index (the same change-log
catch-up), and rebuilt from the records when a cube is first used: nothing here is persisted.
SQLite's FTS5 was measured first and ruled out for the hot path: `MATCH ... ORDER BY bm25`
over 100k LoCoMo-like turns took p50 12.9 ms, p95 33 ms per question, while these postings
score the same query in about a millisecond.

Slots are append-only; a removed record's slot is marked dead and its statistics withdrawn,
and the whole index is compacted when more than half of it is dead.
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from bm25s.stopwords import STOPWORDS_EN

__all__ = ["CubeTextIndex", "TextDoc", "keyword_terms"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUESTION_WORDS = (
    "did does do what when where who whom which why how has have had would could should "
    "i me my you your he him his she her they them their we us our"
)
_STOP = frozenset(STOPWORDS_EN) | frozenset(_QUESTION_WORDS.split(" "))
# `CubeTextIndex.nbytes`, measured with tracemalloc on LoCoMo turns (within 1% at 2,760
# turns): bytes per slot, live record (its TextDoc and maps), postings entry (slot, tf, the
# slot's term count, the cached arrays), distinct term and (entity, record) pair.
_BASE_BYTES = 4096
_SLOT_BYTES = 150
_DOC_BYTES = 300  # a slotted TextDoc and its text (515 before slots)
_ENTRY_BYTES = 39
_TERM_BYTES = 376
_NAME_BYTES = 32


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _porter().stem(word)


@lru_cache(maxsize=1)
def _porter() -> Any:
    """nltk's Porter stemmer, imported on the first word stemmed: importing nltk takes about
    1 s (it loads scipy.stats), which every CLI command and worker start paid before."""
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


def keyword_terms(text: str) -> list[str]:
    """Lower-cased, stop-worded, Porter-stemmed words: what BM25 counts (measured on LoCoMo
    dev: stemming lifts plain BM25's evidence recall@10 from 0.528 to 0.564)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) < 40]


@dataclass(slots=True)
class TextDoc:
    """What the side index needs of one active record (slotted: a loaded cube holds one a
    record, and each is an object the garbage collector walks). Not frozen: a cold cube's
    first recall builds one a record, and a frozen one cost 2 us to make and 3 more to copy
    without its text, against 0.7 us; the index owns what `upsert` gives it."""

    pk: int
    text: str  # speaker + content: the words BM25 sees
    session: str | None = None
    speaker: str | None = None
    event_time: datetime | None = None
    anchor: tuple[float, float] | None = None  # a time the record's own words name (POSIX s)
    entities: tuple[str, ...] = ()  # normalized (lower-case) entity names
    asks: bool = False  # the record asks a question (its session successor may answer it)
    role: str | None = None  # a chat message's role ("user", "assistant"), if it is one


@dataclass
class _Posting:
    slots: array = field(default_factory=lambda: array("q"))
    tfs: array = field(default_factory=lambda: array("f"))
    df: int = 0
    cache: tuple[np.ndarray, np.ndarray] | None = None


class CubeTextIndex:
    K1 = 1.2
    B = 0.75

    def __init__(self, *, seq: int = 0) -> None:
        self.seq = seq
        self.lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._pk: array = array("q")
        self._alive = bytearray()
        self._len: array = array("f")
        self._t0: array = array("d")  # the record's event day (POSIX seconds; NaN: none)
        self._t1: array = array("d")
        self._a0: array = array("d")  # the time its own words name ("yesterday"); NaN: none
        self._a1: array = array("d")
        self._anchored = bytearray()  # 1: the record's own words name a time
        self._terms: list[dict[str, int]] = []
        self._slot_of: dict[int, int] = {}
        self._post: dict[str, _Posting] = {}
        self._total_len = 0.0
        self.docs: dict[int, TextDoc] = {}
        self._entity: dict[str, set[int]] = {}  # normalized name -> pks (speaker included)
        self._alias: dict[str, set[str]] = {}  # a word of a multi-word name -> those names
        self._session: dict[str, list[int]] = {}  # session -> sorted pks
        self._speakers: dict[str, int] = {}  # normalized speaker -> records said
        self._snap: dict[str, np.ndarray] | None = None
        self._entries = 0  # postings entries, live and dead (`nbytes`)
        self._names_held = 0  # (name, record) pairs in `_entity`

    def _arrays(self) -> dict[str, np.ndarray]:
        """Copies of the per-slot arrays (a buffer view would pin the arrays' size)."""
        if self._snap is None:
            self._snap = {
                "pk": np.frombuffer(self._pk, dtype=np.int64).copy(),
                "alive": np.frombuffer(self._alive, dtype=np.bool_).copy(),
                "len": np.frombuffer(self._len, dtype=np.float32).copy(),
                "t0": np.frombuffer(self._t0, dtype=np.float64).copy(),
                "t1": np.frombuffer(self._t1, dtype=np.float64).copy(),
                "a0": np.frombuffer(self._a0, dtype=np.float64).copy(),
                "a1": np.frombuffer(self._a1, dtype=np.float64).copy(),
                "anchored": np.frombuffer(self._anchored, dtype=np.bool_).copy(),
            }
        return self._snap

    @property
    def count(self) -> int:
        return len(self.docs)

    @property
    def nbytes(self) -> int:
        """Bytes held, estimated from the counts of what is held (O(1), for the index
        budget); the coefficients were measured with tracemalloc on LoCoMo turns."""
        return (
            _BASE_BYTES
            + _SLOT_BYTES * len(self._pk)
            + _DOC_BYTES * len(self.docs)
            + _ENTRY_BYTES * self._entries
            + _TERM_BYTES * len(self._post)
            + _NAME_BYTES * self._names_held
        )

    # ---- writes -------------------------------------------------------------------------------

    def upsert(self, docs: list[TextDoc]) -> None:
        """Index `docs`, taking them: each one's words go into the postings and its `text`
        is emptied (the index keeps no second copy of a cube's text)."""
        with self.lock:
            self._remove([d.pk for d in docs if d.pk in self.docs])
            for d in docs:
                self._add(d)

    def remove(self, pks: list[int]) -> None:
        with self.lock:
            self._remove([p for p in pks if p in self.docs])

    def _add(self, d: TextDoc, counts: dict[str, int] | None = None) -> None:
        if counts is None:
            counts = {}
            for t in keyword_terms(d.text):
                counts[t] = counts.get(t, 0) + 1
        slot = len(self._pk)
        self._pk.append(d.pk)
        self._alive.append(1)
        if d.event_time is not None:
            day = d.event_time.replace(hour=0, minute=0, second=0, microsecond=0)
            t0 = day.timestamp()
            t1 = t0 + 86400.0
        else:
            t0 = t1 = math.nan
        a0, a1 = d.anchor if d.anchor is not None else (t0, t1)
        self._t0.append(t0)
        self._t1.append(t1)
        self._a0.append(a0)
        self._a1.append(a1)
        self._anchored.append(1 if d.anchor is not None else 0)
        n = float(sum(counts.values()))
        self._len.append(n)
        self._total_len += n
        self._terms.append(counts)
        self._slot_of[d.pk] = slot
        for t, c in counts.items():
            p = self._post.get(t)
            if p is None:
                p = self._post[t] = _Posting()
            p.slots.append(slot)
            p.tfs.append(float(c))
            p.df += 1
            p.cache = None
        self._entries += len(counts)
        d.text = ""  # the postings hold the words
        self.docs[d.pk] = d
        for name in self._names(d):
            self._entity.setdefault(name, set()).add(d.pk)
            self._names_held += 1
            words = name.split()
            if len(words) > 1:
                for w in words:
                    if len(w) > 2 and w not in _STOP:
                        self._alias.setdefault(w, set()).add(name)
        if d.speaker:
            sp = d.speaker.lower()
            self._speakers[sp] = self._speakers.get(sp, 0) + 1
        if d.session is not None:
            pks = self._session.setdefault(d.session, [])
            if not pks or pks[-1] < d.pk:
                pks.append(d.pk)
            else:
                pks.insert(bisect_right(pks, d.pk), d.pk)
        self._snap = None

    def _remove(self, pks: list[int]) -> None:
        for pk in pks:
            slot = self._slot_of.pop(pk)
            self._alive[slot] = 0
            self._total_len -= self._len[slot]
            for t in self._terms[slot]:
                self._post[t].df -= 1
            self._terms[slot] = {}
            d = self.docs.pop(pk)
            for name in self._names(d):
                holders = self._entity.get(name)
                if holders is not None:
                    holders.discard(pk)
                    self._names_held -= 1
                    if not holders:
                        del self._entity[name]
                        for w in name.split():
                            names = self._alias.get(w)
                            if names is not None:
                                names.discard(name)
                                if not names:
                                    del self._alias[w]
            if d.speaker:
                sp = d.speaker.lower()
                self._speakers[sp] -= 1
                if not self._speakers[sp]:
                    del self._speakers[sp]
            if d.session is not None:
                members = self._session.get(d.session, [])
                i = bisect_right(members, pk) - 1
                if 0 <= i < len(members) and members[i] == pk:
                    members.pop(i)
        if pks:
            self._snap = None
            if len(self.docs) * 2 < len(self._pk):
                self._compact()

    def _compact(self) -> None:
        live = sorted((d.pk, d, self._terms[self._slot_of[d.pk]]) for d in self.docs.values())
        self._reset()
        for _, d, counts in live:
            self._add(d, counts)

    @staticmethod
    def _names(d: TextDoc) -> set[str]:
        names = set(d.entities)
        if d.speaker:
            names.add(d.speaker.lower())
        return names

    # ---- reads --------------------------------------------------------------------------------

    def bm25(
        self, query: str, n: int, *, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-n (pk, BM25 score) for the query's terms; records with no term score nothing."""
        terms = list(dict.fromkeys(keyword_terms(query)))
        with self.lock:
            live = len(self.docs)
            if not terms or not live or n <= 0:
                return []
            arr = self._arrays()
            avgdl = max(self._total_len / live, 1e-9)
            scores = np.zeros(len(self._pk), dtype=np.float32)
            hit = False
            for t in terms:
                p = self._post.get(t)
                if p is None or p.df <= 0:
                    continue
                if p.cache is None:
                    p.cache = (
                        np.frombuffer(p.slots, dtype=np.int64).copy(),
                        np.frombuffer(p.tfs, dtype=np.float32).copy(),
                    )
                slots, tfs = p.cache
                idf = math.log(1.0 + (live - p.df + 0.5) / (p.df + 0.5))
                norm = self.K1 * (1.0 - self.B + self.B * arr["len"][slots] / avgdl)
                # Lucene's form (no k1 + 1); a term lists each slot once, so += is exact
                scores[slots] += idf * tfs / (tfs + norm)
                hit = True
            if not hit:
                return []
        pk_of = arr["pk"]
        mask = (scores > 0) & arr["alive"]
        if allowed is not None:
            mask &= np.isin(pk_of, allowed)
        cand = np.flatnonzero(mask)
        if len(cand) > n:
            cand = cand[np.argpartition(-scores[cand], n - 1)[:n]]
        order = cand[np.lexsort((pk_of[cand], -scores[cand]))]
        return [(int(pk_of[i]), float(scores[i])) for i in order]

    def holders(self, name: str) -> set[int]:
        """Records that mention `name` (normalized) or were said by it."""
        with self.lock:
            return set(self._entity.get(name, ()))

    def resolve(self, name: str) -> set[str]:
        """The entity names `name` refers to: itself, and the multi-word names it is a word
        of ("zorblax" -> "zorblax quenteroth")."""
        with self.lock:
            out = set(self._alias.get(name, ()))
            if name in self._entity:
                out.add(name)
            return out

    def df(self, name: str) -> int:
        with self.lock:
            return len(self._entity.get(name, ()))

    def is_speaker(self, name: str) -> bool:
        with self.lock:
            return name in self._speakers

    def next_in_session(self, pk: int) -> int | None:
        """The record after `pk` in its session (pk order is arrival order)."""
        with self.lock:
            d = self.docs.get(pk)
            if d is None or d.session is None:
                return None
            members = self._session.get(d.session, [])
            i = bisect_right(members, pk)
            return members[i] if i < len(members) else None

    def around(self, pk: int, reach: int) -> list[tuple[int, int]]:
        """(record, distance) for the records up to `reach` places before and after `pk` in
        its session (pk order is arrival order)."""
        with self.lock:
            d = self.docs.get(pk)
            if d is None or d.session is None:
                return []
            members = self._session.get(d.session, [])
            i = bisect_right(members, pk) - 1
            lo, hi = max(0, i - reach), min(len(members), i + reach + 1)
            return [(members[j], abs(j - i)) for j in range(lo, hi) if j != i]

    def in_time(self, start: float, end: float, *, anchored_only: bool = False) -> np.ndarray:
        """Pks of live records whose event day or the time their words name overlaps
        [start, end) (POSIX seconds): "last month I got hurt", said on 20 October, is about
        September and was said in October; a question about either finds it."""
        with self.lock:
            arr = self._arrays()
        with np.errstate(invalid="ignore"):
            said = (arr["t0"] < end) & (arr["t1"] > start)
            about = (arr["a0"] < end) & (arr["a1"] > start)
            mask = arr["alive"] & (said | about)
        if anchored_only:
            mask &= arr["anchored"]
        return arr["pk"][mask]

    def anchored(self) -> np.ndarray:
        """Pks of live records whose own words name a time ("yesterday", "in May")."""
        with self.lock:
            arr = self._arrays()
        return arr["pk"][arr["alive"] & arr["anchored"]]
