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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from memsvc.store.data import CubeData, RecordData
from memsvc.store.database import Database
from memsvc.store.tx import Tx
from memsvc.topic_labels import TopicLabeler

__all__ = ["TopicNamer", "organize_pass"]

MAX_RELATED = 3
MAX_TOPICS = 50  # topics ~ sqrt(n / 2), at most this many; subtopics likewise within each
MAX_SUBTOPICS = 30


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
    cube: CubeData,
    now: datetime,
    *,
    related_threshold: float,
    duplicate_threshold: float,
    namer: TopicNamer | None = None,
) -> dict[str, int]:
    """Reads in one transaction, clusters outside any (k-means on 100k vectors takes
    seconds and must not hold the write lock), then writes in one transaction."""
    counts = {"follows": 0, "merged": 0, "related": 0, "placed": 0, "topics_rebuilt": 0}
    with db.reading() as tx:
        pks, vecs = tx.lifecycle.active_vectors(cube.pk, dim=cube.embedding_dim)
        if len(pks) == 0:
            return counts
        placed = tx.topics.placed(cube.pk)
        todo = pks[np.fromiter((int(p) not in placed for p in pks), bool, len(pks))]
        if len(todo) == 0:
            return counts
        built = tx.topics.built_n(cube.pk)
        rebuild = built is None or len(pks) >= 2 * built
        texts = tx.lifecycle.contents(pks) if rebuild else {}
        speakers = tx.lifecycle.speakers(pks) if rebuild else set()
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    plan = _plan_tree(pks, vecs, texts, speakers, namer) if rebuild else None
    with db.writing() as tx:
        tx.changes.lock(cube.pk)
        rows = tx.lifecycle.records([int(p) for p in todo], chunk=5000)
        rows = {pk: r for pk, r in rows.items() if r.status == "active"}
        counts["follows"] = _link_sessions(tx, cube, rows.values(), now)
        row_of = {int(p): i for i, p in enumerate(pks)}
        merged = _merge_duplicates(tx, cube, rows, pks, vecs, row_of, duplicate_threshold, now)
        counts["merged"] = len(merged)
        alive = np.fromiter((int(p) not in merged for p in pks), bool, len(pks))
        pks, vecs = pks[alive], vecs[alive]
        row_of = {int(p): i for i, p in enumerate(pks)}
        todo = np.array([p for p in todo if int(p) in rows and int(p) not in merged], np.int64)
        counts["related"] = _link_related(tx, cube, todo, pks, vecs, row_of, related_threshold, now)
        if plan is not None:
            counts["placed"] = _write_tree(tx, cube, plan, merged, len(pks), now)
            counts["topics_rebuilt"] = 1
        else:
            counts["placed"] = _place(tx, cube, todo, vecs[[row_of[int(p)] for p in todo]], now)
    return counts


def _link_sessions(tx: Tx, cube: CubeData, rows: Iterable[RecordData], now: datetime) -> int:
    sessions = {r.session_id for r in rows if r.session_id}
    added = 0
    for sid in sorted(sessions):
        turns = tx.lifecycle.session_turns(cube.pk, sid)
        turns.sort(key=lambda t: (t[1] or t[2], t[0]))
        order = [t[0] for t in turns]
        have = set(tx.graph.edge_pairs(cube.pk, "follows", src_pks=order))
        for a, b in itertools.pairwise(order):
            if (a, b) not in have:
                _edge(tx, cube, "follows", a, b, now)
                added += 1
    return added


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def _merge_duplicates(
    tx: Tx,
    cube: CubeData,
    rows: dict[int, RecordData],
    pks: np.ndarray,
    vecs: np.ndarray,
    row_of: dict[int, int],
    threshold: float,
    now: datetime,
) -> set[int]:
    """`rows` is kept as the merges leave it (a survivor may later merge in turn)."""
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
            keep = tx.lifecycle.get(other)
            if keep is None or keep.kind != row.kind or keep.status != "active":
                continue
            if _jaccard(keep.content, row.content) < 0.8:
                continue
            kept = tx.lifecycle.absorb(
                keep.pk,
                source={
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
                },
                importance=max(keep.importance, row.importance),
                recall_count=keep.recall_count + row.recall_count,
            )
            if other in rows:
                rows[other] = kept
            rows[pk] = tx.records.change(
                row.pk, {"status": "archived"}, change="merge", at=now, cause_id=keep.id
            )
            _edge(tx, cube, "duplicate_of", row.pk, keep.pk, now)
            merged.add(pk)
            break
    return merged


def _link_related(
    tx: Tx,
    cube: CubeData,
    todo: np.ndarray,
    pks: np.ndarray,
    vecs: np.ndarray,
    row_of: dict[int, int],
    threshold: float,
    now: datetime,
) -> int:
    if len(todo) == 0:
        return 0
    have = set(tx.graph.edge_pairs(cube.pk, "related"))
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
                _edge(tx, cube, "related", pk, other, now, weight=float(sims[i, j]))
                have.add((pk, other))
                added += 1
    return added


def _edge(
    tx: Tx,
    cube: CubeData,
    typ: str,
    src: int,
    dst: int,
    now: datetime,
    *,
    src_topic: bool = False,
    weight: float = 1.0,
) -> None:
    """`part_of` points at a topic, from a record or (`src_topic`) a subtopic."""
    tx.graph.add_edge(
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
    # Imported here: scikit-learn's import takes about 1 s (scipy), which every CLI command
    # paid before, though only organization clusters.
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=4 if len(x) < 5000 else 1, random_state=0, max_iter=100)
    km.fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def _plan_tree(
    pks, vecs, texts: dict[int, str], speakers: set[str], namer: TopicNamer | None
) -> list[_TopicPlan]:
    labeler = TopicLabeler(list(texts.values()), speakers)
    n = len(pks)

    def name(members: np.ndarray) -> str:
        sample = [texts[int(pks[m])] for m in members]
        custom = namer(sample[:50]) if namer is not None else None
        return (custom or "").strip()[:300] or labeler.label(sample)

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
    tx: Tx, cube: CubeData, plan: list[_TopicPlan], skip: set[int], n: int, now: datetime
) -> int:
    """Replace the cube's tree with `plan` (records in `skip` were merged meanwhile)."""
    tx.topics.clear(cube.pk)
    placed = 0
    for topic in plan:
        members = [pk for sub in topic.children for pk in sub.members if pk not in skip]
        top = _add_topic(tx, cube, None, 0, topic, len(members), n, now)
        for sub in topic.children:
            inner = [pk for pk in sub.members if pk not in skip]
            child = _add_topic(tx, cube, top, 1, sub, len(inner), n, now)
            _edge(tx, cube, "part_of", child, top, now, src_topic=True)
            for pk in inner:
                _edge(tx, cube, "part_of", pk, child, now)
            placed += len(inner)
    return placed


def _add_topic(
    tx: Tx,
    cube: CubeData,
    parent: int | None,
    level: int,
    plan: _TopicPlan,
    size: int,
    n: int,
    now: datetime,
) -> int:
    return tx.topics.add(
        cube.pk,
        parent_pk=parent,
        level=level,
        label=plan.label,
        size=size,
        built_n=n,
        centroid=plan.centroid,
        at=now,
    )


def _place(tx: Tx, cube: CubeData, todo: np.ndarray, todo_vecs: np.ndarray, now: datetime) -> int:
    subs = tx.topics.subtopics(cube.pk)
    if not subs or len(todo) == 0:
        return 0
    cents = np.stack([t.centroid for t in subs])
    cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    best = np.argmax(todo_vecs @ cents.T, axis=1)
    parents = {t.pk: t.parent_pk for t in subs}
    grow: Counter[int] = Counter()
    for pk, b in zip(todo, best, strict=True):
        sub = subs[int(b)]
        _edge(tx, cube, "part_of", int(pk), sub.pk, now)
        grow[sub.pk] += 1
    tx.topics.grow(grow, now)
    above: Counter[int] = Counter()
    for p, n in grow.items():
        above[parents[p]] += n
    tx.topics.grow(above, now)
    return len(todo)
