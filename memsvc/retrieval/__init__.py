"""Recall pipeline: channels over a cube's records, fused into ranked, explained hits.

Retrieval reads a cube only through a `RecallSource` (memsvc/retrieval/source.py); the store
provides one (memsvc/store/recall_source.py).
"""

from memsvc.retrieval.pipeline import Candidate, recall
from memsvc.retrieval.recipe import PRESETS, Recipe, RecipeError, parse_recipe
from memsvc.retrieval.source import RecallSource

__all__ = [
    "PRESETS",
    "Candidate",
    "RecallSource",
    "Recipe",
    "RecipeError",
    "parse_recipe",
    "recall",
]
