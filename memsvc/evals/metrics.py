"""Retrieval metrics exactly as LoCoMo and LongMemEval define them.

LoCoMo (task_eval/evaluation.py): per question, the share of its evidence entries, as written,
found among the retrieved dialog ids; an empty evidence list scores 1.0. A malformed entry
("D8:6; D9:17") can never match, so it counts against recall; the repaired figure uses the
split, normalized, existing ids instead and leaves out questions with no valid evidence.

LongMemEval (src/retrieval/eval_utils.py): recall_any@k (any gold id in the top k), recall_all@k
(all of them; the paper's Recall@k) and ndcg_any@k with binary relevance, using the official
DCG (rel_1 + sum_{i>=2} rel_i / log2(i), so ranks 1 and 2 are both undiscounted) and the ideal
ranking of the whole corpus. Turn-level runs map turns to sessions and grow the cut-off until k
distinct sessions are covered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "dcg",
    "locomo_evidence_recall",
    "ndcg_any",
    "recall_all",
    "recall_any",
    "session_of_turn",
    "turn_to_session_metrics",
]


def locomo_evidence_recall(retrieved: Sequence[str], evidence: Sequence[str]) -> float:
    """Share of `evidence` entries among `retrieved` ids; 1.0 for empty evidence (official)."""
    if not evidence:
        return 1.0
    got = set(retrieved)
    return sum(e in got for e in evidence) / len(evidence)


def recall_any(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    top = set(ranked[:k])
    return float(any(g in top for g in gold))


def recall_all(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    top = set(ranked[:k])
    return float(all(g in top for g in gold))


def dcg(relevances: Sequence[float], k: int) -> float:
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    return rel[0] + sum(r / math.log2(i) for i, r in enumerate(rel[1:], start=2))


def ndcg_any(ranked: Sequence[str], gold: Sequence[str], corpus: Sequence[str], k: int) -> float:
    """Binary-relevance NDCG@k; the ideal ranks every relevant corpus entry first."""
    wanted = set(gold)
    ideal = sorted((1.0 if c in wanted else 0.0 for c in corpus), reverse=True)
    best = dcg(ideal, k)
    if best == 0:
        return 0.0
    return dcg([1.0 if r in wanted else 0.0 for r in ranked[:k]], k) / best


def session_of_turn(turn_id: str) -> str:
    """`<session_id>_<n>` -> `<session_id>`."""
    return "_".join(turn_id.split("_")[:-1])


def turn_to_session_metrics(
    ranked: Sequence[str], gold: Sequence[str], corpus: Sequence[str], k: int
) -> tuple[float, float, float]:
    """(recall_any, recall_all, ndcg_any) at session level from a turn-level ranking.

    The cut-off grows from k until the top turns cover k distinct sessions (or the corpus
    runs out), as the official script does; `ranked` should be the full ranking.
    """
    s_gold = sorted({session_of_turn(g) for g in gold})
    s_corpus = [session_of_turn(c) for c in corpus]
    s_ranked = [session_of_turn(r) for r in ranked]
    eff = k
    while eff <= len(s_corpus) and len(set(s_ranked[:eff])) < k:
        eff += 1
    return (
        recall_any(s_ranked, s_gold, eff),
        recall_all(s_ranked, s_gold, eff),
        ndcg_any(s_ranked, s_gold, s_corpus, eff),
    )
