"""QA answer scores: LoCoMo's official token F1, and the mem0-style set F1 and BLEU-1.

Official (task_eval/evaluation.py): lower-case, drop commas, punctuation and the words
a/an/the/and, Porter-stem, token F1 over multisets. Category 1 (multi-hop) splits prediction and
gold on commas and averages, over gold parts, the best F1 of any predicted part; category 3
keeps the gold before the first ";"; category 5 (adversarial) scores 1 when the prediction says
"no information available" or "not mentioned", else 0.

mem0-style (the protocol most memory papers report; labelled as such): category 5 skipped,
F1 over token *sets* after lower-casing and stripping punctuation, BLEU-1 with smoothing.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from typing import Any

__all__ = ["bleu1", "f1_tokens", "locomo_f1", "normalize_answer", "set_f1"]

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = set(string.punctuation)


@functools.cache
def _stemmer() -> Any:
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def _stem(word: str) -> str:
    return _stemmer().stem(word)


def normalize_answer(s: str) -> str:
    s = s.replace(",", "").lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def f1_tokens(prediction: str, gold: str) -> float:
    pred = [_stem(w) for w in normalize_answer(prediction).split()]
    ref = [_stem(w) for w in normalize_answer(gold).split()]
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(ref)
    return 2 * p * r / (p + r)


def locomo_f1(prediction: str, gold: str, category: int) -> float:
    if category == 5:
        low = prediction.lower()
        return float("no information available" in low or "not mentioned" in low)
    if category == 3:
        gold = gold.split(";")[0].strip()
    if category == 1:
        preds = [p.strip() for p in prediction.split(",")]
        golds = [g.strip() for g in gold.split(",")]
        return sum(max(f1_tokens(p, g) for p in preds) for g in golds) / len(golds)
    return f1_tokens(prediction, gold)


def _simple_tokens(text: str) -> list[str]:
    text = str(text).lower()
    for ch in ".,!?;:\"'()[]{}":
        text = text.replace(ch, " ")
    return text.split()


def set_f1(prediction: str, gold: str) -> float:
    pred, ref = set(_simple_tokens(prediction)), set(_simple_tokens(gold))
    if not pred or not ref:
        return 0.0
    common = pred & ref
    if not common:
        return 0.0
    p, r = len(common) / len(pred), len(common) / len(ref)
    return 2 * p * r / (p + r)


def bleu1(prediction: str, gold: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    pred, ref = _simple_tokens(prediction), _simple_tokens(gold)
    if not pred or not ref:
        return 0.0
    return float(
        sentence_bleu(
            [ref], pred, weights=(1, 0, 0, 0), smoothing_function=SmoothingFunction().method1
        )
    )
