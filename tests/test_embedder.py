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


def test_onnx_backend_matches_torch_on_real_text(tmp_path: Path) -> None:
    from memsvc.evals.corpus import locomo_turns

    texts = (locomo_turns() or [f"fallback sentence {i}" for i in range(200)])[:200]
    onnx = SentenceTransformerEmbedder(threads=2, backend="onnx", cache_dir=tmp_path)
    torch_ = SentenceTransformerEmbedder(threads=2, backend="torch")
    assert onnx.active_backend == "onnx" and torch_.active_backend == "torch"
    a, b = onnx.encode(texts), torch_.encode(texts)
    assert np.abs(a - b).max() < 1e-4
    assert np.abs(onnx.encode(texts[:1]) - b[:1]).max() < 1e-4  # the single-query session too
    exported = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert sorted(p.name.endswith("-q8.onnx") for p in exported) == [False, True]
    again = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path)
    assert again.active_backend == "onnx" and again.active_query_precision == "int8"
    assert sorted((tmp_path / "onnx").glob("*.onnx")) == exported  # made once, reused


def test_queries_run_int8_while_documents_stay_fp32(tmp_path: Path) -> None:
    """The int8 query path keeps rankings: documents are bit-for-bit the fp32 ones, and each
    int8 query vector stays within cosine 0.97 of its fp32 twin."""
    from memsvc.evals.corpus import locomo_turns

    texts = (locomo_turns() or [f"memory number {i} about topic {i % 7}" for i in range(120)])[:120]
    q8 = SentenceTransformerEmbedder(cache_dir=tmp_path)
    fp = SentenceTransformerEmbedder(cache_dir=tmp_path, query_precision="fp32")
    assert q8.active_query_precision == "int8" and fp.active_query_precision == "fp32"
    docs = q8.encode(texts)
    assert np.abs(docs - fp.encode(texts)).max() < 1e-6
    exact = fp.encode(texts[:60], query=True)
    assert np.abs(exact - docs[:60]).max() < 1e-4
    fast = q8.encode(texts[:60], query=True)
    cos = (fast * exact).sum(axis=1)
    assert cos.min() > 0.97 and cos.mean() > 0.985
    same_top = (np.argmax(fast @ docs.T, axis=1) == np.argmax(exact @ docs.T, axis=1)).mean()
    assert same_top >= 0.95
    torch_ = SentenceTransformerEmbedder(backend="torch")
    assert torch_.active_query_precision == "fp32"  # int8 queries are an ONNX path only
    with pytest.raises(ValueError, match="query precision"):
        SentenceTransformerEmbedder(query_precision="int4")


def test_unsupported_pipeline_falls_back_to_torch(tmp_path: Path) -> None:
    import json

    model_dir = tmp_path / "max-pooled"
    shutil.copytree(bundled_model_path(), model_dir)
    cfg_path = model_dir / "1_Pooling" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    cfg_path.write_text(json.dumps(cfg))
    emb = SentenceTransformerEmbedder(model_dir, cache_dir=tmp_path / "cache")
    assert emb.active_backend == "torch"
    assert emb.encode(["still works"]).shape == (1, 384)
    with pytest.raises(RuntimeError, match="ONNX embedding backend is not available"):
        SentenceTransformerEmbedder(model_dir, backend="onnx", cache_dir=tmp_path / "c2").encode(
            ["x"]
        )
