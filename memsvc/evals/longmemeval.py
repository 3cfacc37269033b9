"""LongMemEval loader: each question with its own haystack, documents as the official
retrieval script builds them, and a check of the user's file against the official ones.

Documents (src/retrieval/run_retrieval.py): at session granularity one per session, its user
turns joined with spaces; at turn granularity one per user turn, id `<session_id>_<n>` with n
the 1-based position among all the session's turns. Gold ids contain "answer": an evidence
session whose user turns have no `has_answer` is renamed `noans` (not gold), and so is each
user turn of an evidence session without `has_answer`. Scoring skips the `_abs` (abstention)
questions and those with no user-side evidence turn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsvc.evals.jsonfile import read_json_list

__all__ = [
    "KNOWN_FILES",
    "LongMemEvalError",
    "LongMemEvalQuestion",
    "conversation",
    "documents",
    "identify_file",
    "load_longmemeval",
]

QUESTION_TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "knowledge-update",
    "temporal-reasoning",
)
# The official files (../shared/data/longmemeval/README.md): name -> (approximate bytes,
# sha256 prefix). Only prefixes are published there; a file matches when both agree.
KNOWN_FILES = {
    "longmemeval_oracle.json": (15_400_000, "821a"),
    "longmemeval_s_cleaned.json": (277_000_000, "d6f2"),
    "longmemeval_m_cleaned.json": (2_700_000_000, "9d79"),
}


class LongMemEvalError(ValueError):
    """The file is not LongMemEval-shaped; the message names the problem and where."""


@dataclass(frozen=True)
class FileIdentity:
    path: str
    bytes: int
    sha256: str
    official: str | None  # the official file it matches, or None

    def describe(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes >= 1e6 else f"{self.bytes / 1e3:.1f} kB"
        if self.official:
            return f"{self.path}: the official {self.official} ({size}, sha256 {self.sha256[:12]}…)"
        return (
            f"{self.path}: not one of the official LongMemEval files ({size}, sha256 "
            f"{self.sha256[:12]}…); results are not comparable with published figures"
        )


def identify_file(path: str | Path) -> FileIdentity:
    """Size and sha256 of `path`, and which official file it is, if any."""
    path = Path(path)
    if not path.is_file():
        raise LongMemEvalError(f"{path}: no such file")
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    digest = h.hexdigest()
    official = None
    for name, (approx, prefix) in KNOWN_FILES.items():
        if digest.startswith(prefix) and abs(size - approx) <= 0.01 * approx:
            official = name
    return FileIdentity(str(path), size, digest, official)


@dataclass(frozen=True)
class LongMemEvalQuestion:
    question_id: str
    question_type: str
    question: str
    answer: str
    question_date: str
    session_ids: list[str]
    dates: list[str]
    sessions: list[list[dict[str, Any]]]
    answer_session_ids: list[str]

    @property
    def abstention(self) -> bool:
        return "_abs" in self.question_id


def documents(q: LongMemEvalQuestion, granularity: str) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, dates) of the question's haystack, as the official script builds them."""
    ids: list[str] = []
    texts: list[str] = []
    dates: list[str] = []
    for sid, date, session in zip(q.session_ids, q.dates, q.sessions, strict=True):
        user = [t for t in session if t.get("role") == "user"]
        if granularity == "session":
            doc_id = sid
            if "answer" in sid and not any(t.get("has_answer") for t in user):
                doc_id = sid.replace("answer", "noans")
            ids.append(doc_id)
            texts.append(" ".join(str(t.get("content", "")) for t in user))
            dates.append(date)
        elif granularity == "turn":
            for n, turn in enumerate(session, start=1):
                if turn.get("role") != "user":
                    continue
                doc_id = f"{sid}_{n}"
                if "answer" in sid and not turn.get("has_answer"):
                    doc_id = doc_id.replace("answer", "noans")
                ids.append(doc_id)
                texts.append(str(turn.get("content", "")))
                dates.append(date)
        else:
            raise ValueError(f"granularity must be 'session' or 'turn', not {granularity!r}")
    return ids, texts, dates


def conversation(q: LongMemEvalQuestion, granularity: str) -> list[tuple[str, str, str, str, str]]:
    """(document id, session id, role, text, date) of every turn, assistant turns included,
    for a memory system that is given the whole conversation as an agent would give it.

    A turn is filed under the document the official scorer counts it as: at session level its
    session, at turn level its round (an assistant turn belongs to the user turn it answers,
    the paper's user-assistant round as the unit). Assistant turns before a session's first
    user turn belong to no document and are left out; empty turns are kept (the caller skips
    them as it skips empty documents)."""
    ids, _, _ = documents(q, granularity)
    known = set(ids)
    out: list[tuple[str, str, str, str, str]] = []
    for sid, date, session in zip(q.session_ids, q.dates, q.sessions, strict=True):
        has_answer = any(t.get("has_answer") for t in session if t.get("role") == "user")
        session_doc = sid.replace("answer", "noans") if "answer" in sid and not has_answer else sid
        current: str | None = session_doc if granularity == "session" else None
        for n, turn in enumerate(session, start=1):
            role = str(turn.get("role"))
            if granularity == "turn" and role == "user":
                current = f"{sid}_{n}"
                if "answer" in sid and not turn.get("has_answer"):
                    current = current.replace("answer", "noans")
            if current is None or current not in known:
                continue
            out.append((current, sid, role, str(turn.get("content", "")), date))
    return out


def scored(q: LongMemEvalQuestion) -> bool:
    """Official skips: abstention questions and those without a user-side evidence turn."""
    if q.abstention:
        return False
    ids, _, _ = documents(q, "turn")
    return any("answer" in i for i in ids)


def _question(raw: Any, i: int) -> LongMemEvalQuestion:
    where = f"question {i}"
    if not isinstance(raw, dict):
        raise LongMemEvalError(f"{where}: expected an object")
    need = (
        "question_id",
        "question_type",
        "question",
        "answer",
        "haystack_session_ids",
        "haystack_dates",
        "haystack_sessions",
        "answer_session_ids",
    )
    missing = [k for k in need if k not in raw]
    if missing:
        raise LongMemEvalError(f"{where}: missing {', '.join(missing)}")
    where = f"question {raw['question_id']}"
    sids, dates, sessions = (
        raw["haystack_session_ids"],
        raw["haystack_dates"],
        raw["haystack_sessions"],
    )
    if not (isinstance(sids, list) and isinstance(dates, list) and isinstance(sessions, list)):
        raise LongMemEvalError(f"{where}: haystack fields must be lists")
    if not len(sids) == len(dates) == len(sessions):
        raise LongMemEvalError(
            f"{where}: haystack_session_ids, haystack_dates and haystack_sessions differ in "
            f"length ({len(sids)}, {len(dates)}, {len(sessions)})"
        )
    for j, s in enumerate(sessions):
        if not isinstance(s, list) or not all(
            isinstance(t, dict) and "role" in t and "content" in t for t in s
        ):
            raise LongMemEvalError(f"{where}: session {j} must be a list of {{role, content}}")
    return LongMemEvalQuestion(
        question_id=str(raw["question_id"]),
        question_type=str(raw["question_type"]),
        question=str(raw["question"]),
        answer=str(raw["answer"]),
        question_date=str(raw.get("question_date", "")),
        session_ids=[str(s) for s in sids],
        dates=[str(d) for d in dates],
        sessions=sessions,
        answer_session_ids=[str(s) for s in raw["answer_session_ids"]],
    )


def load_longmemeval(path: str | Path, limit: int | None = None) -> list[LongMemEvalQuestion]:
    raw = read_json_list(Path(path), LongMemEvalError, "questions")
    if limit is not None:
        raw = raw[:limit]
    return [_question(q, i) for i, q in enumerate(raw)]
