"""Entities found in text without a model: speakers, proper names, places, organizations.

A heuristic, documented as one: runs of capitalised words are names, except a lone common
word that only starts a sentence ("Thanks", "Wow"); a name after "in/at/to/from/near/visited"
is typed `place`, one ending in Inc/Corp/University/... `org`, a message's speaker `person`,
anything else `name`. Dates are not entities here: time expressions go to the temporal
channel (`retrieval.timeexpr`). Names are compared case-insensitively (`normalize`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bm25s.stopwords import STOPWORDS_EN

__all__ = ["COMMON_WORDS", "Entity", "extract_entities", "normalize", "query_names"]


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CAP_RUN = re.compile(r"\b[A-Z][\w'\u2019&-]*(?:\s+(?:(?:of|de|the)\s+)*[A-Z][\w'\u2019&-]*)*")
_PLACE_BEFORE = re.compile(r"\b(?:in|at|to|from|near|visit(?:ed|ing)?|around)\s+$", re.I)
_PLACE_WORD = len("visiting")  # the longest word _PLACE_BEFORE looks for
_ORG_SUFFIX = re.compile(
    r"\b(?:Inc|Corp|Corporation|Company|Co|Ltd|LLC|University|College|School|Institute|Club|"
    r"Foundation|Association|Bank|Group|Agency|Hospital|Center|Centre)\.?$"
)
_COMMON = (
    frozenset(STOPWORDS_EN)
    | _wordset(
        """i im i'm i've i'd i'll hey hi hello wow oh ah yes yeah yep no nope ok okay sure thanks
    thank great awesome nice cool love lol haha hmm well so but and also just really totally
    absolutely definitely congrats congratulations sorry please good glad happy amazing that's
    it's what's how's there's let's here's you're we're they're don't can't didn't won't
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december today yesterday tomorrow last next
    this these those my your his her our their we you they he she it what when where who why
    how which would could should can will did does do is was were are am be been have has had
    not never always maybe check look see wanna gonna gotta take make keep let let's go"""
    )
    | _wordset("finally recently then now also anyway besides actually honestly")
)
COMMON_WORDS = _COMMON  # words that are not names even when capitalised


@dataclass(frozen=True)
class Entity:
    name: str
    normalized: str
    type: str  # person | place | org | name


def normalize(name: str) -> str:
    name = re.sub(r"['\u2019]s$", "", name.strip())
    return re.sub(r"\s+", " ", name).strip(" .-").lower()


def extract_entities(text: str, *, speaker: str | None = None) -> list[Entity]:
    """Distinct entities in `text` (the speaker first), in order of first mention."""
    out: dict[str, Entity] = {}
    if speaker and speaker.strip():
        sp = Entity(speaker.strip(), normalize(speaker), "person")
        out[sp.normalized] = sp
    for m in _CAP_RUN.finditer(text):
        raw = re.sub(r"['\u2019]s$", "", m.group(0)).rstrip(",-&'\u2019")
        words = raw.split()
        first = 0
        while first < len(words) and words[first].lower().strip("'\u2019") in _COMMON:
            first += 1  # "Thanks Caroline" -> "Caroline"
        if first == len(words):
            continue
        words = words[first:]
        raw = " ".join(words)
        norm = normalize(raw)
        if len(norm) < 2 or norm in _COMMON or norm in out:
            continue
        # Only the whitespace and the few characters just before the name decide its type;
        # searching the whole text before every name made one add quadratic in its length.
        start = m.start()
        gap = start
        while gap > 0 and text[gap - 1].isspace():
            gap -= 1
        if _ORG_SUFFIX.search(raw):
            kind = "org"
        elif gap < start and _PLACE_BEFORE.search(text, max(0, gap - _PLACE_WORD), start):
            kind = "place"
        else:
            kind = "name"
        out[norm] = Entity(raw, norm, kind)
    return list(out.values())


_QWORD = re.compile(r"[\w'\u2019&.-]+")


def query_names(query: str, known: object, *, max_words: int = 4) -> list[str]:
    """The known entity names a query mentions, longest match first, any capitalisation.

    `known(name) -> bool` says whether a normalized name is in the cube."""
    words = [normalize(w) for w in _QWORD.findall(query)]
    found: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(max_words, len(words) - i), 0, -1):
            cand = " ".join(words[i : i + n])
            if n == 1 and (cand in _COMMON or len(cand) < 2):
                continue
            if known(cand):  # type: ignore[operator]
                if cand not in found:
                    found.append(cand)
                i += n - 1
                break
        i += 1
    return found
