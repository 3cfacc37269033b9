"""Recall recipes: which channels run, their weights, the fusion and the candidate depth.

Named presets cover most uses; a recipe can also be given as a dict (REST: a JSON object) or
as a compact string, FAISS-factory style: "dense=1+keyword=1+session=0.5|rrf20|n100"
(channels with weights joined by "+", then fusion: `rrf<k>` or `weighted`, then candidates
per channel, then an optional fixed final k as `k<N>`). `Recipe.describe()` writes that
string back, and it parses to an equal recipe.

A recipe is immutable, its channel weights included, so a preset is shared safely: change
one with `recipe.replace(candidates=200)` (a new, validated recipe), never in place.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from memsvc.retrieval.channels import BOOSTERS, CHANNELS, GENERATORS, REGISTRY, RESCORERS

__all__ = ["PRESETS", "Recipe", "RecipeError", "Weights", "parse_recipe"]

DEFAULT_RRF_K = 20
DEFAULT_CANDIDATES = 50


class RecipeError(ValueError):
    """A recipe names an unknown preset or channel, or has a bad weight or setting."""


class Weights(Mapping[str, float]):
    """Channel weights: an immutable, hashable mapping, equal to a dict of the same items."""

    __slots__ = ("_d",)

    def __init__(self, items: Mapping[str, float]) -> None:
        self._d = {str(k): float(v) for k, v in items.items()}

    def __getitem__(self, key: str) -> float:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._d == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __repr__(self) -> str:
        return repr(self._d)


def _number(w: float) -> str:
    """The shortest text that parses back to `w`, without an exponent (1e-05 -> 0.00001)."""
    text = repr(float(w))
    if "e" in text:
        text = f"{Decimal(text):f}"
    return text[:-2] if text.endswith(".0") else text


def _shown(value: object) -> str:
    """A value as an error message quotes it: short, whatever was sent."""
    text = value if isinstance(value, str) else repr(value)
    text = text if len(text) <= 60 else text[:60] + "..."
    return repr(text) if isinstance(value, str) else text


def _check_int(name: str, value: object, top: int) -> None:
    """A whole number in [1, top]: a float or a bool here would reach a slice or a range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise RecipeError(f"{name} must be a whole number in [1, {top}], got {_shown(value)}")


@dataclass(frozen=True)
class Recipe:
    name: str = field(default="custom", compare=False)  # a label: equal recipes act alike
    channels: Mapping[str, float] = field(default_factory=lambda: Weights({"dense": 1.0}))
    fusion: str = "rrf"  # "rrf" or "weighted"
    rrf_k: int = DEFAULT_RRF_K  # rrf's k; also the recency booster's rank constant
    candidates: int = DEFAULT_CANDIDATES  # per generator; at least 3 * k are always taken
    k: int | None = None  # final k, when the recipe fixes it (else the caller's k)

    def __post_init__(self) -> None:
        if not isinstance(self.channels, Mapping):
            raise RecipeError("channels must map channel names to weights")
        unknown = sorted(str(c) for c in set(self.channels) - set(CHANNELS))
        if unknown:
            names = ", ".join(_shown(c)[1:-1] for c in unknown[:5])
            raise RecipeError(f"unknown channel {names}; channels are {', '.join(CHANNELS)}")
        for name, w in self.channels.items():
            if not isinstance(w, int | float) or not 0 <= w <= 100:
                msg = f"weight of {name} must be a number in [0, 100], got {_shown(w)}"
                raise RecipeError(msg)
        object.__setattr__(self, "channels", Weights(self.channels))
        if not any(self.channels.get(g, 0) > 0 for g in GENERATORS):
            raise RecipeError(f"a recipe needs one of {', '.join(GENERATORS)} with weight > 0")
        if not isinstance(self.name, str):
            raise RecipeError(f"name must be a string, got {type(self.name).__name__}")
        if self.fusion not in ("rrf", "weighted"):
            raise RecipeError(f"fusion must be 'rrf' or 'weighted', got {_shown(self.fusion)}")
        _check_int("rrf_k", self.rrf_k, 1000)
        _check_int("candidates", self.candidates, 10_000)
        if self.k is not None:
            _check_int("k", self.k, 1000)

    @property
    def dense_only(self) -> bool:
        return set(self.active()) == {"dense"}

    @property
    def needs_vector(self) -> bool:
        """Whether any channel, booster or rescorer it runs ranks by cosine to the query (the
        query is embedded only then)."""
        return any(REGISTRY[c].needs_vector for c in self.active())

    def weight(self, channel: str) -> float:
        return float(self.channels.get(channel, 0.0))

    def active(self) -> list[str]:
        """The channels it runs (weight > 0), in registry order."""
        return [c for c in CHANNELS if self.weight(c) > 0]

    def generators(self) -> list[str]:
        return [c for c in GENERATORS if self.weight(c) > 0]

    def boosters(self) -> list[str]:
        return [c for c in BOOSTERS if self.weight(c) > 0]

    def rescorers(self) -> list[str]:
        return [c for c in RESCORERS if self.weight(c) > 0]

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (validated again); the name becomes "custom" unless
        given."""
        changes.setdefault("name", "custom")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": dict(self.channels),
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "candidates": self.candidates,
            "k": self.k,
        }

    def describe(self) -> str:
        """The compact string of this recipe; `parse_recipe` reads it back to an equal one
        ("dense=1+keyword=1|rrf20", "dense=1+temporal=1+retention=0.2|weighted|n100")."""
        parts = ["+".join(f"{c}={_number(w)}" for c, w in self.channels.items())]
        if self.fusion == "rrf":
            parts.append(f"rrf{self.rrf_k}")
        else:
            if self.rrf_k != DEFAULT_RRF_K:  # recency's rank constant: "rrf30|weighted"
                parts.append(f"rrf{self.rrf_k}")
            parts.append(self.fusion)
        if self.candidates != DEFAULT_CANDIDATES:
            parts.append(f"n{self.candidates}")
        if self.k is not None:
            parts.append(f"k{self.k}")
        return "|".join(parts)


# Weights were measured on LoCoMo dev (evals/README.md has the table); the mechanisms, not the
# numbers, carry over: dense and keyword agree on most answers, temporal only speaks to time
# questions, session follows a question to its answer, entity adds 1-2 hop neighbours;
# retention 0.2 scales a hit by 0.8 + 0.2 R, so a faded memory yields only to a fresh one
# about as relevant. own 0.5 lifts the user's own words for a first-person question
# (LongMemEval dev, first 100 questions: session recall_all@5 0.821 -> 0.846, turn
# recall_any@1 0.500 -> 0.526); on a chat of one role, such as LoCoMo's, it changes nothing.
# 100 candidates: the weighted fusion scales each list down to its 100th score, so a channel's
# lead over the 100th candidate, not the 50th, is what counts (LongMemEval dev session
# recall_all@5 0.909 -> 0.923, LoCoMo dev recall@10 80.1 -> 80.7; README, evaluations).
# aside 1 lifts a long message by its sentence that beats the whole (sentence keys): the
# LongMemEval dev multi-session questions' session recall_all@5 0.839 -> 0.887, LoCoMo dev
# 80.7 -> 80.8. sentence 0.5 (records by their best vector, whole or sentence; first-person
# questions only) takes the whole dev file's session recall_all@5 0.947 -> 0.962 and leaves
# LoCoMo dev unchanged (81.0; on every question it cost adversarial 83.5 -> 75.7).
# near 0.2 lifts the persons' turns up to two places from a top hit in its session, where
# the answer to what matched often is (LoCoMo dev recall@10 81.1 -> 81.9, plateau 81.6-81.9
# over weights 0.2-0.5 and reach 2-3; LongMemEval dev turn recall_all@5 unchanged).
PRESETS: Mapping[str, Recipe] = MappingProxyType(
    {
        "fast": Recipe("fast", {"dense": 1.0}),
        "balanced": Recipe(
            "balanced",
            {
                "dense": 1.0,
                "keyword": 1.0,
                "temporal": 1.0,
                "sentence": 0.5,
                "session": 0.7,
                "near": 0.2,
                "aside": 1.0,
                "speaker": 0.5,
                "own": 0.5,
                "retention": 0.2,
            },
            fusion="weighted",
            candidates=100,
        ),
        "deep": Recipe(
            "deep",
            {
                "dense": 1.0,
                "keyword": 1.0,
                "temporal": 1.0,
                "entity": 0.3,
                "sentence": 0.5,
                "session": 0.7,
                "near": 0.2,
                "aside": 1.0,
                "speaker": 0.5,
                "own": 0.5,
                "retention": 0.2,
            },
            fusion="weighted",
            candidates=100,
        ),
    }
)
DEFAULT_PRESET = "balanced"

_PART = re.compile(r"^([a-z]+)\s*=\s*(\d*\.?\d*)$")
_MAX_DIGITS = 400  # the longest weight `describe` writes is ~330 characters (5e-324)


def _whole(part: str, name: str, digits: str, top: int) -> int:
    """A setting's number; a huge one fails as the bad value it is, not as an int overflow."""
    if len(digits) > len(str(top)):
        raise RecipeError(f"{name} must be a whole number in [1, {top}], got {_shown(part)}")
    return int(digits)


def _parse_string(text: str) -> Recipe:
    parts = [p.strip() for p in text.split("|")]
    channels: dict[str, float] = {}
    for item in re.split(r"[+,]", parts[0]):
        m = _PART.match(item.strip())
        if not m or m.group(2) in ("", ".") or len(m.group(2)) > _MAX_DIGITS:
            raise RecipeError(f"bad channel weight {_shown(item.strip())} (expected name=weight)")
        channels[m.group(1)] = float(m.group(2))
    fields: dict[str, Any] = {"channels": channels}
    for p in parts[1:]:
        if m := re.fullmatch(r"rrf(\d+)?", p):
            fields["fusion"] = "rrf"
            if m.group(1):
                fields["rrf_k"] = _whole(p, "rrf_k", m.group(1), 1000)
        elif p == "weighted":
            fields["fusion"] = "weighted"
        elif m := re.fullmatch(r"n(\d+)", p):
            fields["candidates"] = _whole(p, "candidates", m.group(1), 10_000)
        elif m := re.fullmatch(r"k(\d+)", p):
            fields["k"] = _whole(p, "k", m.group(1), 1000)
        else:
            raise RecipeError(
                f"bad recipe part {_shown(p)} (expected rrf<k>, weighted, n<N> or k<N>)"
            )
    return Recipe("custom", **fields)


def parse_recipe(value: str | dict[str, Any] | Recipe | None) -> Recipe:
    """A preset name, a compact string, a dict of Recipe fields, or a Recipe."""
    if value is None:
        return PRESETS[DEFAULT_PRESET]
    if isinstance(value, Recipe):
        return value
    if isinstance(value, str):
        if value in PRESETS:
            return PRESETS[value]
        if "=" not in value:
            raise RecipeError(
                f"unknown recipe {_shown(value)}; presets are {', '.join(PRESETS)} "
                "(or give channels, e.g. 'dense=1+keyword=1|rrf20')"
            )
        return _parse_string(value)
    if isinstance(value, dict):
        base = value.get("preset")
        fields = {k: v for k, v in value.items() if k != "preset"}
        if base is not None:
            if not isinstance(base, str) or base not in PRESETS:
                msg = f"unknown preset {_shown(base)}; presets are {', '.join(PRESETS)}"
                raise RecipeError(msg)
            merged = PRESETS[base].to_dict()
            merged.update(fields)
            fields = merged
            fields["name"] = fields.get("name", base) if "channels" not in value else "custom"
        allowed = {"name", "channels", "fusion", "rrf_k", "candidates", "k"}
        extra = sorted(set(fields) - allowed)
        if extra:
            names = ", ".join(_shown(f)[1:-1] for f in extra[:5])
            raise RecipeError(f"unknown recipe field {names}")
        try:
            return Recipe(**fields)
        except TypeError as exc:
            raise RecipeError(f"bad recipe: {exc}") from exc
    kind = type(value).__name__
    raise RecipeError(f"a recipe is a preset name, a string or an object, not {kind}")
