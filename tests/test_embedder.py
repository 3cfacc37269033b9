"""The real bundled model, and swapping in another model directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from memsvc import Memory, SentenceTransformerEmbedder, Settings
from memsvc.embedder import BUNDLED_MODEL_ID, bundled_model_path


def test_bundled_model_gives_normalized_float32(embedder: SentenceTransformerEmbedder) -> None:
    vecs = embedder.encode(["a cat sat on the mat", "a kitten rested on the rug", "tax law"])
    assert embedder.model_id == BUNDLED_MODEL_ID and embedder.dim == 384
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    assert embedder.encode([]).shape == (0, 384)


def test_batched_equals_single(embedder: SentenceTransformerEmbedder) -> None:
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(10)]
    batched = embedder.encode(texts)
    single = np.stack([embedder.encode([t])[0] for t in texts])
    assert np.allclose(batched, single, atol=1e-5)


def test_any_model_directory_can_be_configured(tmp_path: Path) -> None:
    model_dir = tmp_path / "my-model"
    shutil.copytree(bundled_model_path(), model_dir)
    settings = Settings(home=tmp_path / "data", embedding_model=str(model_dir))
    with Memory(settings=settings) as mem:
        assert mem.embedder.model_id == "my-model"
        mem.add("custom model memory", user_id="u")
        assert mem.get_cube("user:u").embedding_model == "my-model"
        assert mem.recall("custom model", user_id="u")[0].record.content == "custom model memory"


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no sentence-transformers model"):
        SentenceTransformerEmbedder(tmp_path / "nothing-here")
