"""Benchmark texts: real LoCoMo turns when ../shared/data is present, plus a documented
generator of varied, realistic memory sentences to reach any size.

The generator is deterministic (seeded): the same `n` and seed give the same texts, so any
figure can be reproduced on another machine.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "CAST",
    "chat_days",
    "default_locomo",
    "generated_sentences",
    "locomo_turns",
    "shared_dir",
    "texts",
]

# Who speaks generated chat turns, in turn.
CAST = ["Avery", "Jordan", "Priya", "Mateo", "Sofia", "Kenji", "Amara", "Lukas", "Noor", "Eli"]


@functools.cache
def shared_dir() -> Path | None:
    """The shared data folder: $MEMSVC_SHARED_DIR, else ../shared beside this checkout, else
    ../shared beside the repository it was cloned from (CI clones the project elsewhere)."""
    if os.environ.get("MEMSVC_SHARED_DIR"):
        return Path(os.environ["MEMSVC_SHARED_DIR"])
    root = Path(__file__).resolve().parents[1]
    if (root.parent / "shared").is_dir():
        return root.parent / "shared"
    try:
        origin = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if origin and Path(origin).is_dir() and (Path(origin).resolve().parent / "shared").is_dir():
        return Path(origin).resolve().parent / "shared"
    return None


def default_locomo() -> Path:
    """locomo-dev5.json in the shared data folder (may not exist)."""
    base = shared_dir()
    return (base or Path("../shared")) / "data/locomo/locomo-dev5.json"


_NAMES = [
    "Alice",
    "Bob",
    "Caroline",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
]
_PLACES = [
    "Berlin",
    "Lisbon",
    "the lake house",
    "Kyoto",
    "the gym",
    "the office",
    "Toronto",
    "the farmers market",
    "her parents' place",
    "the library",
    "Nairobi",
    "the beach",
]
_THINGS = [
    "a vintage camera",
    "sourdough bread",
    "a pottery class",
    "the marathon",
    "a new puppy",
    "the quarterly report",
    "a guitar",
    "a trip to Iceland",
    "the community garden",
    "a book about birds",
    "an electric bike",
    "a chess club",
]
_TIMES = [
    "yesterday",
    "last weekend",
    "in May",
    "two years ago",
    "every Tuesday",
    "this morning",
    "over the holidays",
    "next month",
    "since college",
    "in 2022",
]
_TEMPLATES = [
    "{a} went to {p} {t} and talked about {x}.",
    "{a} told {b} that {x} changed everything {t}.",
    "{a} has been saving up for {x} {t}.",
    "{b} recommended {x} to {a} while they were at {p}.",
    "{a} feels nervous about {x} but excited to visit {p}.",
    "{a} and {b} started {x} together {t}.",
    "{a} lost {x} at {p} {t}, which was upsetting.",
    "{b} asked {a} whether {x} was worth it.",
    "{a} moved to {p} {t} for work.",
    "{a}'s favourite memory is {x} at {p}.",
]


def generated_sentences(n: int, *, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.sample(_NAMES, 2)
        out.append(
            rng.choice(_TEMPLATES).format(
                a=a, b=b, p=rng.choice(_PLACES), x=rng.choice(_THINGS), t=rng.choice(_TIMES)
            )
            + ("" if i % 7 else f" (note {i})")
        )
    return out


def chat_days(texts: list[str], start: datetime, per_day: int = 20) -> list[list[dict[str, Any]]]:
    """`texts` as chat sessions of `per_day` turns, one a day from `start`, a minute apart,
    spoken by `CAST` in turn (messages as `Memory.add` takes them)."""
    out = []
    for i in range(0, len(texts), per_day):
        day = start + timedelta(days=i // per_day)
        out.append(
            [
                {
                    "name": CAST[(i + j) % len(CAST)],
                    "content": text,
                    "timestamp": day + timedelta(minutes=j),
                }
                for j, text in enumerate(texts[i : i + per_day])
            ]
        )
    return out


def locomo_turns(path: Path | None = None) -> list[str]:
    """Every turn text of a LoCoMo file (default: the shared dev half), in order; [] when the
    file is not there."""
    path = path or default_locomo()
    if not path.exists():
        return []
    turns = []
    for sample in json.loads(path.read_text(encoding="utf-8")):
        conv = sample["conversation"]
        for key, session in conv.items():
            if key.startswith("session_") and isinstance(session, list):
                turns += [f"{t['speaker']}: {t['text']}" for t in session if t.get("text")]
    return turns


def texts(n: int, *, seed: int = 0) -> list[str]:
    """`n` texts: LoCoMo turns first (when available), then generated sentences."""
    real = locomo_turns()[:n]
    return real + generated_sentences(n - len(real), seed=seed)
