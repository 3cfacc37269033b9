"""Recall pipeline: channels over a cube's candidates, fused into ranked, explained hits."""

from retrieval.pipeline import Candidate, recall

__all__ = ["Candidate", "recall"]
