"""Topic names from words, without a model: class-based TF-IDF of a topic's records against
the whole cube.

A topic's name is the two or three terms that are frequent in its records and rare in the
rest of the cube: score(term, topic) = (records of the topic holding it) x log(1 + records
of the cube / records of the cube holding it). Terms are single words and two-word phrases
of adjacent kept words ("mental health", "guinea pig"). Chat is mostly glue, so before any
counting the vocabulary drops:
  - English function words (scikit-learn's list and bm25s's) and contractions ("you've");
  - chat filler: greetings, thanks, interjections, small-talk verbs ("hey", "wow", "did",
    "feel");
  - the speakers' names and the nicknames they call each other ("Mel" for Melanie): in a
    conversation they are in every topic and say nothing about any.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

from bm25s.stopwords import STOPWORDS_EN

__all__ = ["CHAT_FILLER", "TopicLabeler", "speaker_names", "stopwords", "terms"]

# Greetings, thanks, interjections, agreement and the verbs and adverbs of small talk: they
# carry the tone of a turn, not its subject.
_FILLER = """
    hey hi hello hiya howdy bye goodbye cheers thanks thank thx welcome congrats
    congratulations wow whoa yeah yea yep yup yes nope nah okay ok oh ooh ah aw aww uh um hmm
    haha hahaha lol omg btw gosh dear glad great awesome cool nice amazing wonderful fantastic
    incredible fun lovely sweet brilliant perfect neat exciting excited happy sorry sure
    totally definitely absolutely really truly certainly actually basically literally super
    pretty quite lot lots bit things thing stuff kind sort way ways know knew think thought
    thinking feel feels felt feeling guess mean means meant say says said tell told ask asked
    talk talking talked let lets did does doing done got get gets getting gotten going goes
    went gone come came coming photo photos pic pics picture pictures image people person
    guys folks everyone someone anyone check able having gonna wanna gotta kinda sorta
    make makes made making want wants wanted need needs needed sounds forward seeing
    try trying tried like liked likes love loved loves just also maybe probably good better
    best bad right yes look looks looking looked seems seem hear heard hope hoping hoped
    keep keeping kept share shares shared sharing tho though anyway anyways today yesterday
    tomorrow soon recently lately day days time times week weeks year years
"""
CHAT_FILLER = frozenset(_FILLER.split())

# What a contraction's second half can be; the whole word is function glue ("they're").
_CONTRACTED = frozenset(["re", "ve", "ll", "d", "m", "t"])


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """scikit-learn's English stop words, bm25s's and chat filler. scikit-learn is imported
    on first use: its import takes about 1 s (scipy), which every CLI command paid before."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | frozenset(STOPWORDS_EN) | CHAT_FILLER


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})
_TOKEN = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(lower-case word, written capitalized) for each word; contractions resolved: "it's"
    -> "it", "Oliver's" -> "oliver", "they're" -> nothing; ("", False) marks a break that
    no phrase spans (punctuation, a contraction)."""
    out: list[tuple[str, bool]] = []
    text = text.translate(_APOSTROPHES)
    end = 0
    for m in _TOKEN.finditer(text):
        if text[end : m.start()].strip():
            out.append(("", False))  # punctuation between: no phrase across it
        end = m.end()
        word = m.group()
        if "'" in word:
            base, _, rest = word.partition("'")
            if rest.lower() in _CONTRACTED:  # don't, they're, I've
                out.append(("", False))  # a gap: no phrase across it
                continue
            word = base  # possessive or "is": it's, here's, Oliver's
        out.append((word.lower(), word[:1].isupper()))
    return out


def speaker_names(speakers: Iterable[str], texts: Iterable[str]) -> frozenset[str]:
    """The speakers' names, each part, and the nicknames used for them: a capitalized word
    of the texts that starts a speaker's name ("Mel" of "Melanie", 3+ letters)."""
    parts = {p for s in speakers for p in re.findall(r"[a-z]+", s.lower()) if len(p) >= 2}
    names = set(parts)
    for text in texts:
        for word, capital in _tokens(text):
            nickname = capital and len(word) >= 3 and word not in names
            if nickname and any(p.startswith(word) for p in parts):
                names.add(word)
    return frozenset(names)


def terms(text: str, drop: frozenset[str] = frozenset()) -> set[str]:
    """The text's countable terms: kept words (3-30 letters, not a stopword or in `drop`)
    and two-word phrases of kept words that stand next to each other."""
    kept: list[str | None] = []
    stop = stopwords()
    for word, _ in _tokens(text):
        ok = 3 <= len(word) <= 30 and word not in stop and word not in drop
        kept.append(word if ok else None)
    out = {w for w in kept if w}
    out.update(f"{a} {b}" for a, b in itertools.pairwise(kept) if a and b and a != b)
    return out


class TopicLabeler:
    """Names clusters of one cube's texts; built once per cube (its document frequencies),
    then `label()` per topic or subtopic."""

    def __init__(self, texts: Sequence[str], speakers: Iterable[str] = ()) -> None:
        self.drop = speaker_names(speakers, texts)
        self.n_docs = len(texts)
        self.df: Counter[str] = Counter()
        for t in texts:
            self.df.update(terms(t, self.drop))
        # a plural counts as its singular when the cube has that word ("bowls" -> "bowl")
        self._singular = {
            w: w[:-1]
            for w in self.df
            if " " not in w and w.endswith("s") and not w.endswith("ss") and w[:-1] in self.df
        }
        # each counted term is shown as its commoner spelling ("kids" over "kid")
        self._shown = {
            one: max((one, many), key=lambda w: (self.df[w], w))
            for many, one in self._singular.items()
        }
        if self._singular:
            merged: Counter[str] = Counter()
            for w, n in self.df.items():
                merged[self._singular.get(w, w)] += n
            self.df = merged

    def _terms(self, text: str) -> set[str]:
        return {self._singular.get(w, w) for w in terms(text, self.drop)}

    def label(self, texts: Sequence[str], top: int = 3) -> str:
        """The `top` terms that best tell these texts from the rest of the cube, joined by
        ", "; "misc" when nothing is left (texts of nothing but glue words)."""
        tf: Counter[str] = Counter()
        for t in texts:
            tf.update(self._terms(t))
        # a topic of 4+ records is named by terms that two of them share, not by a one-off
        floor = 2 if len(texts) >= 4 and any(n >= 2 for n in tf.values()) else 1
        n = max(self.n_docs, len(texts))

        def score(w: str) -> float:
            return tf[w] * math.log(1 + n / max(1, self.df.get(w, 0)))

        ranked = sorted((w for w in tf if tf[w] >= floor), key=lambda w: (-score(w), w))
        phrases: dict[str, list[str]] = {}  # word -> phrases holding it, best first
        for w in ranked:
            if " " in w:
                for part in w.split():
                    phrases.setdefault(part, []).append(w)
        chosen: list[str] = []
        used: set[str] = set()
        for w in ranked:
            if " " not in w:  # a phrase said by most records that hold the word names better
                w = next((p for p in phrases.get(w, []) if tf[p] * 5 >= tf[w] * 3), w)
            words = set(w.split())
            if words & used:
                continue  # "mental health" said it: no "health" after it
            chosen.append(w)
            used |= words
            if len(chosen) == top:
                break
        return ", ".join(self._shown.get(w, w) for w in chosen) or "misc"
