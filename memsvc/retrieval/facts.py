"""Stated facts, found without a model: (subject, attribute, value) in a sentence.

The supersession heuristic (memsvc/supersession.py) needs to know that "I moved to Berlin"
and "I live in Paris" speak of the same subject's same attribute with different values. A
small grammar covers the attributes people update most: where they live, who they work for,
their job, their partner, their pets' names, what they drive, their age, and any "my X is Y"
(favourite colour, phone number, ...). The subject is the speaker (first person: "I", "my")
or a capitalised name ("Alice lives in ...", "Alice's favourite ..."); third-person pronouns
are not resolved, so "she moved to Rome" states no fact here. Questions, negations ("I no
longer ...", "never") and plans ("thinking about moving to ...") state no fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memsvc.retrieval.entities import COMMON_WORDS

__all__ = ["Fact", "fact_key", "find_fact", "same_value"]


@dataclass(frozen=True)
class Fact:
    subject: str  # normalized: the user/speaker for first person, else a lower-cased name
    attribute: str
    value: str  # normalized

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.attribute}"[:300]


_VALUE = r"(?P<v>[^.,;!?\n]{1,60})"
_ADV = r"(?:(?:just|recently|finally|now|already|officially|also|have|has|had|'ve|'s|been)\s+)*"
_FIRST = r"(?P<first>\bI(?:'m|'ve|\s+am|\s+have)?\b|\b[Ww]e(?:'re|'ve)?\b)"
_NAME = r"(?P<name>\b[A-Z][a-z]+)"
_SUBJ = rf"(?:{_FIRST}|{_NAME})\s+{_ADV}"

# (attribute, pattern after the subject); the value is what follows.
_VERBS: list[tuple[str, str]] = [
    ("residence", r"(?:live|lives|living|reside|resides|residing)\s+(?:now\s+)?in\s+"),
    ("residence", r"(?:moved|relocated)\s+(?:back\s+|over\s+|out\s+)?to\s+"),
    ("residence", r"(?:am|is|'m)?\s*(?:based|settled)\s+in\s+"),
    ("employer", r"(?:work|works|working)\s+(?:now\s+)?(?:at|for)\s+"),
    ("employer", r"(?:got\s+hired\s+(?:at|by)|started\s+(?:a\s+new\s+job\s+)?at)\s+"),
    ("job", r"(?:work|works|working)\s+as\s+(?:an?\s+)?"),
    ("job", r"(?:became|become|got\s+promoted\s+to|was\s+promoted\s+to)\s+(?:an?\s+)?"),
    ("partner", r"(?:am\s+|'m\s+|is\s+)?(?:dating|married\s+to|engaged\s+to|seeing)\s+"),
    ("car", r"(?:drive|drives|driving)\s+an?\s+"),
    ("diet", r"(?:am|'m|is)\s+(?:now\s+)?(?:an?\s+)?(?=vegan|vegetarian|pescatarian|omnivore)"),
    ("age", r"(?:(?:am|'m|is|turned)\s+)?(?=\d{1,3}\b)"),
]
_VERB_RES = [(attr, re.compile(_SUBJ + pat + _VALUE)) for attr, pat in _VERBS]
# chat drops the subject: "Moved to Berlin last week!", "Finally settled in Oslo."
_IMPLIED = r"^\s*(?:(?:just|finally|recently|also|so|and)\s+)*"
_IMPLIED_RES = [
    (attr, re.compile(_IMPLIED + pat + _VALUE, re.IGNORECASE))
    for attr, pat in _VERBS
    if attr in ("residence", "employer", "job")
]
# "my favourite colour is blue", "Alice's phone number is ...", "my dog's name is Rex"
_MY = re.compile(
    r"(?:(?P<my>\b[Mm]y)|(?P<owner>\b[A-Z][a-z]+)'s)\s+"
    r"(?P<attr>(?:[a-z]+\s+){0,2}?[a-z]+?)(?:'s\s+name)?\s+is\s+(?:now\s+)?(?:called\s+)?" + _VALUE
)
_NEGATED = re.compile(
    r"\b(?:not|never|no\s+longer|don't|doesn't|didn't|won't|isn't|anymore|wasn't|aren't)\b", re.I
)
_HEDGED = re.compile(
    r"\b(?:if|might|maybe|may|could|would|should|thinking|plan|planning|hope|hoping|want|wants|"
    r"wanted|going\s+to|gonna|dream|wish|someday|used\s+to|was\s+living)\b",
    re.I,
)
_VALUE_END = re.compile(
    r"\s+(?:and|but|because|since|so|with|for|last|this|these|next|yesterday|today|now|two|a\s+few|"
    r"after|before|when|while|which|who|where|as|on|at)\b.*$",
    re.I,
)
_ARTICLE = re.compile(r"^(?:the|a|an|my|our)\s+", re.I)
# "my X is ..." with these X is talk, not a fact with one value at a time
_NOT_ATTRIBUTES = frozenset(
    [
        "point",
        "guess",
        "bet",
        "day",
        "week",
        "weekend",
        "life",
        "question",
        "problem",
        "idea",
        "plan",
        "hope",
        "dream",
        "goal",
        "pleasure",
        "heart",
        "mind",
        "advice",
        "answer",
        "reason",
        "guess",
        "issue",
        "thing",
        "worry",
        "fear",
        "concern",
        "feeling",
        "opinion",
        "bad",
        "turn",
        "fault",
        "name",
    ]
)


def _norm_value(v: str) -> str:
    v = _VALUE_END.sub("", v.strip())
    v = _ARTICLE.sub("", v.strip())
    return re.sub(r"\s+", " ", v).strip(" '\"").lower()


def _attr_name(a: str) -> str:
    a = a.lower().replace("favourite", "favorite").replace("fave", "favorite")
    a = a.replace("colour", "color")
    a = re.sub(r"^(?:new|current|old|latest|present)\s+", "", a)
    return {"home": "residence", "hometown": "residence", "city": "residence"}.get(a, a)


def find_fact(text: str, *, speaker: str | None = None, user: str | None = None) -> Fact | None:
    """The first fact stated in `text`, or None. `speaker`/`user` name the first person."""
    if not text or "?" in text:
        return None
    me = (speaker or user or "me").strip().lower()
    for sentence in re.split(r"(?<=[.!;])\s+|\n+", text):
        if _NEGATED.search(sentence) or _HEDGED.search(sentence):
            continue
        found = _in_sentence(sentence, me)
        if found is not None:
            return found
    return None


def _in_sentence(sentence: str, me: str) -> Fact | None:
    best: tuple[int, Fact] | None = None
    for attr, rx in _VERB_RES:
        m = rx.search(sentence)
        if m is None:
            continue
        value = _norm_value(m.group("v"))
        if not value or len(value.split()) > 5:
            continue
        if attr == "age":
            value = value.removesuffix(" years old").removesuffix(" now")
            if not value.isdigit():
                continue
        subject = me if m.group("first") else m.group("name").lower()
        if m.group("name") and m.group("name").lower() in COMMON_WORDS:
            continue  # "Finally settled in ...": a capitalised word, not a name
        if best is None or m.start() < best[0]:
            best = (m.start(), Fact(subject, attr, value))
    for attr, rx in _IMPLIED_RES:
        m = rx.search(sentence)
        if best is None and m is not None:
            value = _norm_value(m.group("v"))
            if value and len(value.split()) <= 5:
                best = (m.start(), Fact(me, attr, value))
    m = _MY.search(sentence)
    if m is not None and (best is None or m.start() < best[0]):
        attr = _attr_name(m.group("attr"))
        value = _norm_value(m.group("v"))
        words = attr.split()
        if value and len(value.split()) <= 5 and words and words[-1] not in _NOT_ATTRIBUTES:
            subject = me if m.group("my") else m.group("owner").lower()
            best = (m.start(), Fact(subject, attr, value))
    return best[1] if best else None


def fact_key(text: str, *, speaker: str | None = None, user: str | None = None) -> str | None:
    f = find_fact(text, speaker=speaker, user=user)
    return f.key if f else None


def same_value(a: str, b: str) -> bool:
    """ "paris" and "paris, france" or "downtown paris" are one value; "paris" and "berlin"
    are two."""
    a, b = a.lower().strip(), b.lower().strip()
    return a == b or a in b.split() or b in a.split() or a.startswith(b) or b.startswith(a)
