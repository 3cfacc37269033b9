"""LoCoMo loader: conversations, turns with session dates, questions with evidence.

Survives the dataset's quirks (see ../shared/data/locomo/README.md): category-5 items with only
`adversarial_answer`, integer answers, category-3 answers with "; explanation", session dates
without a session, and evidence lists that are empty, malformed ("D8:6; D9:17", "D:11:26",
"D30:05", "D") or point at turns that do not exist. Evidence is kept twice: `evidence` exactly as
the file has it (what the official scorer counts) and `repaired_evidence` (split, normalized,
and only ids of turns that exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memsvc.evals.jsonfile import read_json_list

__all__ = [
    "CATEGORIES",
    "LocomoConversation",
    "LocomoError",
    "LocomoQuestion",
    "LocomoTurn",
    "load_locomo",
    "parse_session_date",
    "repair_evidence",
]

# Verified against the official evaluation code (task_eval/evaluation.py).
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_DIA_ID = re.compile(r"^D(\d+):(\d+)$")
_LOOSE_ID = re.compile(r"D:?(\d+):(\d+)")


class LocomoError(ValueError):
    """The file is not LoCoMo-shaped; the message names the problem and where."""


@dataclass(frozen=True)
class LocomoTurn:
    dia_id: str
    session: int
    speaker: str
    text: str
    time: datetime | None

    @property
    def document(self) -> str:
        """What every system indexes for this turn (the same text for all of them)."""
        return f"{self.speaker}: {self.text}"


@dataclass(frozen=True)
class LocomoQuestion:
    index: int
    question: str
    answer: str
    category: int
    evidence: list[str]  # exactly as in the file
    repaired_evidence: list[str]

    @property
    def category_name(self) -> str:
        return CATEGORIES[self.category]


@dataclass
class LocomoConversation:
    sample_id: str
    speakers: tuple[str, str]
    turns: list[LocomoTurn] = field(default_factory=list)
    questions: list[LocomoQuestion] = field(default_factory=list)

    @property
    def sessions(self) -> dict[int, list[LocomoTurn]]:
        out: dict[int, list[LocomoTurn]] = {}
        for t in self.turns:
            out.setdefault(t.session, []).append(t)
        return out


def parse_session_date(text: str) -> datetime:
    """ "1:56 pm on 8 May, 2023" -> 2023-05-08 13:56 (UTC: the dataset has no zones)."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %B %d, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise LocomoError(f"unrecognized session date {text!r}")


def repair_evidence(evidence: list[Any], known: set[str]) -> list[str]:
    """Split and normalize evidence ids; keep only turns that exist, first occurrence once."""
    out: list[str] = []
    for item in evidence:
        for m in _LOOSE_ID.finditer(str(item)):
            dia = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia in known and dia not in out:
                out.append(dia)
    return out


def _turn_text(turn: dict[str, Any]) -> str:
    text = str(turn.get("text") or "").strip()
    caption = turn.get("blip_caption")
    if caption:
        text = f"{text} [shares {caption}]".strip()
    return text


def _conversation(raw: Any, where: str) -> LocomoConversation:
    if not isinstance(raw, dict):
        raise LocomoError(f"{where}: expected an object, got {type(raw).__name__}")
    for key in ("sample_id", "conversation", "qa"):
        if key not in raw:
            raise LocomoError(f"{where}: missing key {key!r}")
    conv = raw["conversation"]
    if not isinstance(conv, dict) or not isinstance(raw["qa"], list):
        raise LocomoError(f"{where}: 'conversation' must be an object and 'qa' a list")
    sid = str(raw["sample_id"])
    where = f"conversation {sid}"
    out = LocomoConversation(sid, (str(conv.get("speaker_a", "")), str(conv.get("speaker_b", ""))))
    sessions = sorted(
        int(m.group(1))
        for k in conv
        if (m := re.fullmatch(r"session_(\d+)", k)) and isinstance(conv[k], list)
    )
    for n in sessions:  # session_N_date_time without session_N: nothing to ingest
        date = conv.get(f"session_{n}_date_time")
        when = parse_session_date(str(date)) if date else None
        for i, turn in enumerate(conv[f"session_{n}"]):
            if not isinstance(turn, dict) or "dia_id" not in turn or "speaker" not in turn:
                raise LocomoError(f"{where}: session_{n} turn {i} lacks dia_id or speaker")
            text = _turn_text(turn)
            if not text:
                continue
            out.turns.append(LocomoTurn(str(turn["dia_id"]), n, str(turn["speaker"]), text, when))
    if not out.turns:
        raise LocomoError(f"{where}: no sessions with turns")
    known = {t.dia_id for t in out.turns}
    for i, qa in enumerate(raw["qa"]):
        if not isinstance(qa, dict) or "question" not in qa or "category" not in qa:
            raise LocomoError(f"{where}: qa[{i}] lacks question or category")
        try:
            category = int(qa["category"])
        except (TypeError, ValueError):
            raise LocomoError(f"{where}: qa[{i}] has category {qa['category']!r}") from None
        if category not in CATEGORIES:
            raise LocomoError(f"{where}: qa[{i}] has unknown category {category}")
        answer = qa.get("answer", qa.get("adversarial_answer", ""))
        evidence = qa.get("evidence") or []
        if not isinstance(evidence, list):
            evidence = [evidence]
        out.questions.append(
            LocomoQuestion(
                index=i,
                question=str(qa["question"]),
                answer="" if answer is None else str(answer),
                category=category,
                evidence=[str(e) for e in evidence],
                repaired_evidence=repair_evidence(evidence, known),
            )
        )
    return out


def load_locomo(
    path: str | Path, conversations: list[str] | None = None
) -> list[LocomoConversation]:
    """Every conversation in the file (or those named), in file order."""
    path = Path(path)
    raw = read_json_list(path, LocomoError, "conversations")
    convs = [_conversation(c, f"{path.name}[{i}]") for i, c in enumerate(raw)]
    if conversations:
        have = {c.sample_id for c in convs}
        missing = [c for c in conversations if c not in have]
        if missing:
            raise LocomoError(f"{path}: no conversation {', '.join(missing)} (has {sorted(have)})")
        convs = [c for c in convs if c.sample_id in conversations]
    return convs
