"""Organization of a cube, without a model: a topic tree, session order, near-neighbour links
and duplicate merge.

A record is "organized" once it hangs in the topic tree (a `part_of` edge to a subtopic);
each pass handles the active records that do not yet, so it is incremental and a second
pass finds nothing to do. For those records it:
  - adds `follows` edges between consecutive turns of their sessions (event time, then
    insertion order), including turns added by separate calls;
  - merges duplicates: a fact (any kind but `episode`: two identical utterances are two
    events) whose cosine to an older active fact of the same kind is >= `duplicate_threshold`
    and whose words are nearly the same (Jaccard >= 0.8) is archived with a `duplicate_of`
    edge and a "merge" version; the survivor's `source.merged` keeps the duplicate's
    provenance and it takes the higher importance and the summed recall count;
  - adds `related` edges to the (at most 3) nearest other records with cosine >=
    `related_threshold`;
  - places it in the tree: under the nearest subtopic centroid, or, when the cube has
    doubled since the tree was built (or has none), rebuilds the tree: k-means topics, then
    k-means subtopics inside each, each named by its most distinctive words (c-TF-IDF).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from memsvc.store import repository as repo
from memsvc.store.database import Database
from memsvc.store.orm import CubeRow, EdgeRow, RecordRow, TopicRow
from memsvc.store.precision import encode_stored

__all__ = ["TopicNamer", "organize_pass", "topic_label"]

MAX_RELATED = 3
MAX_TOPICS = 50  # topics ~ sqrt(n / 2), at most this many; subtopics likewise within each
MAX_SUBTOPICS = 30
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
STOP = (
    frozenset(STOPWORDS_EN)
    | frozenset(ENGLISH_STOP_WORDS)
    | frozenset(
        [
            "i'm",
            "it's",
            "that's",
            "don't",
            "can't",
            "i've",
            "i'll",
            "you're",
            "really",
            "just",
            "also",
            "like",
            "get",
            "got",
            "one",
            "much",
        ]
    )
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOP}


def topic_label(texts: list[str], df: Counter[str], n_docs: int, top: int = 3) -> str:
    """The words most frequent in these texts relative to the whole cube (c-TF-IDF)."""
    tf: Counter[str] = Counter()
    for t in texts:
        tf.update(_words(t))
    scored = sorted(tf, key=lambda w: (-tf[w] * math.log(1 + n_docs / (1 + df.get(w, 0))), w))
    return ", ".join(scored[:top]) or "misc"


class TopicNamer(Protocol):
    """The hook for naming topics some other way (an LLM, a taxonomy): given a sample of a
    topic's texts, its name, or None to keep the keyword name."""

    def __call__(self, texts: list[str]) -> str | None: ...


@dataclass
class _TopicPlan:
    label: str
    centroid: np.ndarray
    members: list[int]  # record pks (subtopics) or indexes into `children` (topics)
    children: list[_TopicPlan] = field(default_factory=list)


def organize_pass(
    db: Database,
    cube: CubeRow,
    now: datetime,
    *,
    related_threshold: float,
    duplicate_threshold: float,
    namer: TopicNamer | None = None,
) -> dict[str, int]:
    """Reads in one transaction, clusters outside any (k-means on 100k vectors takes
    seconds and must not hold the write lock), then writes in one transaction."""
    counts = {"follows": 0, "merged": 0, "related": 0, "placed": 0, "topics_rebuilt": 0}
    with db.read() as s:
        pks, vecs = repo.active_vectors(s, cube.pk, dim=cube.embedding_dim)
        if len(pks) == 0:
            return counts
        placed = set(
            s.scalars(
                select(EdgeRow.src_pk).where(
                    EdgeRow.cube_pk == cube.pk,
                    EdgeRow.type == "part_of",
                    EdgeRow.src_kind == "record",
                )
            )
        )
        todo = pks[np.fromiter((int(p) not in placed for p in pks), bool, len(pks))]
        if len(todo) == 0:
            return counts
        built = s.scalar(
            select(TopicRow.built_n).where(TopicRow.cube_pk == cube.pk, TopicRow.level == 0)
        )
        rebuild = built is None or len(pks) >= 2 * built
        texts = _texts(s, pks) if rebuild else {}
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    plan = _plan_tree(pks, vecs, texts, namer) if rebuild else None
    with db.write() as s:
        repo.lock_cube_changes(s, cube.pk)
        rows: dict[int, RecordRow] = {}
        for i in range(0, len(todo), 5000):
            part = [int(p) for p in todo[i : i + 5000]]
            rows.update(repo.records_by_pks(s, part, with_cube=False))
        rows = {pk: r for pk, r in rows.items() if r.status == "active"}
        counts["follows"] = _link_sessions(s, cube, rows.values(), now)
        row_of = {int(p): i for i, p in enumerate(pks)}
        merged = _merge_duplicates(s, cube, rows, pks, vecs, row_of, duplicate_threshold, now)
        counts["merged"] = len(merged)
        alive = np.fromiter((int(p) not in merged for p in pks), bool, len(pks))
        pks, vecs = pks[alive], vecs[alive]
        row_of = {int(p): i for i, p in enumerate(pks)}
        todo = np.array([p for p in todo if int(p) in rows and int(p) not in merged], np.int64)
        counts["related"] = _link_related(s, cube, todo, pks, vecs, row_of, related_threshold, now)
        if plan is not None:
            counts["placed"] = _write_tree(s, cube, plan, merged, len(pks), now)
            counts["topics_rebuilt"] = 1
        else:
            counts["placed"] = _place(s, cube, todo, vecs[[row_of[int(p)] for p in todo]], now)
    return counts


def _link_sessions(s: Session, cube: CubeRow, rows, now: datetime) -> int:
    sessions = {r.session_id for r in rows if r.session_id}
    added = 0
    for sid in sorted(sessions):
        turns = s.execute(
            select(RecordRow.pk, RecordRow.event_time, RecordRow.created_at).where(
                RecordRow.cube_pk == cube.pk,
                RecordRow.session_id == sid,
                RecordRow.status == "active",
            )
        ).all()
        turns.sort(key=lambda t: (t[1] or t[2], t[0]))
        order = [t[0] for t in turns]
        have = set(
            s.execute(
                select(EdgeRow.src_pk, EdgeRow.dst_pk).where(
                    EdgeRow.cube_pk == cube.pk,
                    EdgeRow.type == "follows",
                    EdgeRow.src_pk.in_(order),
                )
            ).all()
        )
        for a, b in itertools.pairwise(order):
            if (a, b) not in have:
                s.add(_edge(cube, "follows", a, b, now))
                added += 1
    return added


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def _merge_duplicates(s, cube, rows, pks, vecs, row_of, threshold, now) -> set[int]:
    merged: set[int] = set()
    facts = [pk for pk, r in rows.items() if r.kind != "episode"]
    if not facts:
        return merged
    sims = vecs[[row_of[pk] for pk in facts]] @ vecs.T
    for i, pk in enumerate(facts):
        row = rows[pk]
        for j in np.argsort(-sims[i])[:5]:
            other = int(pks[j])
            if other >= pk or other in merged or sims[i, j] < threshold:
                continue  # only an older record survives a merge
            keep = s.get(RecordRow, other)
            if keep is None or keep.kind != row.kind or keep.status != "active":
                continue
            if _jaccard(keep.content, row.content) < 0.8:
                continue
            keep.source = {
                **(keep.source or {}),
                "merged": [
                    *((keep.source or {}).get("merged") or []),
                    {
                        "id": row.id,
                        "source": row.source or {},
                        "session_id": row.session_id,
                        "event_time": row.event_time.isoformat() if row.event_time else None,
                        "created_at": row.created_at.isoformat(),
                    },
                ],
            }
            keep.importance = max(keep.importance, row.importance)
            keep.recall_count += row.recall_count
            row.status = "archived"
            repo.new_version(s, row, "merge", now, cause_id=keep.id)
            s.add(_edge(cube, "duplicate_of", row.pk, keep.pk, now))
            merged.add(pk)
            break
    return merged


def _link_related(s, cube, todo, pks, vecs, row_of, threshold, now) -> int:
    if len(todo) == 0:
        return 0
    have = set(
        s.execute(
            select(EdgeRow.src_pk, EdgeRow.dst_pk).where(
                EdgeRow.cube_pk == cube.pk, EdgeRow.type == "related"
            )
        ).all()
    )
    added = 0
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        sims = vecs[[row_of[int(p)] for p in chunk]] @ vecs.T
        for i, pk in enumerate(int(p) for p in chunk):
            sims[i, row_of[pk]] = -1.0
            best = np.argsort(-sims[i])[:MAX_RELATED]
            for j in best:
                if sims[i, j] < threshold:
                    break
                other = int(pks[j])
                if (pk, other) in have or (other, pk) in have:
                    continue
                s.add(_edge(cube, "related", pk, other, now, weight=float(sims[i, j])))
                have.add((pk, other))
                added += 1
    return added


def _edge(
    cube: CubeRow,
    typ: str,
    src: int,
    dst: int,
    now: datetime,
    *,
    src_topic: bool = False,
    weight: float = 1.0,
) -> EdgeRow:
    """`part_of` points at a topic, from a record or (`src_topic`) a subtopic."""
    return repo.graph_edge(
        cube.pk,
        typ,
        src,
        dst,
        now,
        src_kind="topic" if src_topic else "record",
        dst_kind="topic" if typ == "part_of" else "record",
        weight=weight,
    )


def _kmeans(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, min(k, len(x)))
    if k == 1:
        return np.zeros(len(x), np.int64), x.mean(axis=0, keepdims=True)
    km = KMeans(n_clusters=k, n_init=4 if len(x) < 5000 else 1, random_state=0, max_iter=100)
    km.fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def _plan_tree(pks, vecs, texts: dict[int, str], namer: TopicNamer | None) -> list[_TopicPlan]:
    df: Counter[str] = Counter()
    for t in texts.values():
        df.update(_words(t))
    n = len(pks)

    def name(members: np.ndarray) -> str:
        sample = [texts[int(pks[m])] for m in members]
        custom = namer(sample[:50]) if namer is not None else None
        return (custom or "").strip()[:300] or topic_label(sample, df, n)

    top_labels, top_centroids = _kmeans(vecs, min(MAX_TOPICS, round(math.sqrt(n / 2)) or 1))
    out = []
    for t in range(len(top_centroids)):
        members = np.flatnonzero(top_labels == t)
        if len(members) == 0:
            continue
        topic = _TopicPlan(name(members), top_centroids[t], [])
        k_sub = min(MAX_SUBTOPICS, round(math.sqrt(len(members) / 2)) or 1)
        sub_labels, sub_centroids = _kmeans(vecs[members], k_sub)
        for u in range(len(sub_centroids)):
            inner = members[sub_labels == u]
            if len(inner):
                plan = _TopicPlan(name(inner), sub_centroids[u], [int(pks[m]) for m in inner])
                topic.children.append(plan)
        out.append(topic)
    return out


def _write_tree(
    s: Session, cube: CubeRow, plan: list[_TopicPlan], skip: set[int], n: int, now: datetime
) -> int:
    """Replace the cube's tree with `plan` (records in `skip` were merged meanwhile)."""
    s.execute(delete(EdgeRow).where(EdgeRow.cube_pk == cube.pk, EdgeRow.type == "part_of"))
    s.execute(delete(TopicRow).where(TopicRow.cube_pk == cube.pk))
    placed = 0
    for topic in plan:
        members = [pk for sub in topic.children for pk in sub.members if pk not in skip]
        row = _topic_row(cube, None, 0, topic, len(members), n, now)
        s.add(row)
        s.flush()
        for sub in topic.children:
            inner = [pk for pk in sub.members if pk not in skip]
            child = _topic_row(cube, row.pk, 1, sub, len(inner), n, now)
            s.add(child)
            s.flush()
            s.add(_edge(cube, "part_of", child.pk, row.pk, now, src_topic=True))
            s.add_all(_edge(cube, "part_of", pk, child.pk, now) for pk in inner)
            placed += len(inner)
    return placed


def _topic_row(cube, parent, level, plan: _TopicPlan, size: int, n: int, now) -> TopicRow:  # type: ignore[no-untyped-def]
    return TopicRow(
        cube_pk=cube.pk,
        parent_pk=parent,
        level=level,
        label=plan.label,
        size=size,
        built_n=n,
        centroid=encode_stored(plan.centroid, "float32"),
        created_at=now,
        updated_at=now,
    )


def _texts(s: Session, pks) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(pks), 20_000):
        part = [int(p) for p in pks[i : i + 20_000]]
        q = select(RecordRow.pk, RecordRow.content).where(RecordRow.pk.in_(part))
        out.update({pk: text for pk, text in s.execute(q)})
    return out


def _place(s: Session, cube: CubeRow, todo, todo_vecs, now: datetime) -> int:
    subs = list(s.scalars(select(TopicRow).where(TopicRow.cube_pk == cube.pk, TopicRow.level == 1)))
    if not subs or len(todo) == 0:
        return 0
    cents = np.stack([np.frombuffer(t.centroid, np.float32) for t in subs])
    cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    best = np.argmax(todo_vecs @ cents.T, axis=1)
    parents = {t.pk: t.parent_pk for t in subs}
    grow: Counter[int] = Counter()
    for pk, b in zip(todo, best, strict=True):
        sub = subs[int(b)]
        s.add(_edge(cube, "part_of", int(pk), sub.pk, now))
        grow[sub.pk] += 1
    for t in subs:
        if grow[t.pk]:
            t.size += grow[t.pk]
            t.updated_at = now
    for top in s.scalars(select(TopicRow).where(TopicRow.pk.in_({parents[p] for p in grow}))):
        top.size += sum(n for p, n in grow.items() if parents[p] == top.pk)
        top.updated_at = now
    return len(todo)
