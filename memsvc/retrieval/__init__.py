"""Recall pipeline: channels over a cube's records, fused into ranked, explained hits."""

from memsvc.retrieval.pipeline import Candidate, recall
from memsvc.retrieval.recipe import PRESETS, Recipe, RecipeError, parse_recipe

__all__ = ["PRESETS", "Candidate", "Recipe", "RecipeError", "parse_recipe", "recall"]
