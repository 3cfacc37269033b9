"""ONNX Runtime inference for sentence-transformers models: the same fp32 math as torch,
about twice as fast on a CPU (measured for all-MiniLM-L6-v2 on 2 cores, one thread: one
query 4.9 ms vs 10.6 ms, batches of 8 3.0 vs 5.6 ms per text; largest difference between
the two embeddings 2e-7).

The transformer is exported once per model to a cache directory (atomically, so worker
processes starting together are safe) and checked against torch on probe sentences before
use. Only the common pipeline is supported (Transformer, then mean or CLS pooling, then
optional Normalize); anything else, or any mismatch, keeps the torch path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxEncoder", "build_onnx_encoders"]

log = logging.getLogger(__name__)
PROBES = [
    "a short probe",
    "Caroline went to the LGBTQ support group on May 7 and felt accepted there.",
    "Wie spät ist es? 今何時ですか",
]


class OnnxEncoder:
    """Tokenize, run the exported transformer, pool and normalize, like the torch model."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        *,
        max_length: int,
        pooling: str,
        normalize: bool,
        inputs: list[str],
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.inputs = inputs

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(self._batch(texts[i : i + batch_size]))
        return np.concatenate(out).astype(np.float32, copy=False)

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        feed = {name: enc[name].astype(np.int64) for name in self.inputs if name in enc}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            vecs = hidden[:, 0]
        else:
            mask = enc["attention_mask"][..., None].astype(np.float32)
            vecs = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        if self.normalize:
            vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs


def _pipeline(st: Any) -> tuple[Any, str, bool] | None:
    """(transformer module, pooling mode, normalize) for a supported model, else None."""
    modules = list(st)
    names = [type(m).__name__ for m in modules]
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]):
        return None
    mode = getattr(modules[1], "pooling_mode", None)
    if mode is None:  # older sentence-transformers: flags
        cfg = modules[1].get_config_dict()
        mode = (
            "mean"
            if cfg.get("pooling_mode_mean_tokens")
            else ("cls" if cfg.get("pooling_mode_cls_token") else None)
        )
    if mode not in ("mean", "cls"):
        return None
    auto = getattr(modules[0], "auto_model", None) or getattr(modules[0], "model", None)
    return (auto, mode, names[2:] == ["Normalize"]) if auto is not None else None


def _cache_key(model_dir: Path) -> str:
    import torch

    h = hashlib.sha256(torch.__version__.encode())
    for f in sorted(model_dir.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json":
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _export(auto_model: Any, tokenizer: Any, path: Path) -> list[str]:
    import torch

    sample = tokenizer(["hello world"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class ByName(torch.nn.Module):
        """Positional inputs to keyword arguments: model signatures differ by version."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = auto_model

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(names, tensors, strict=True))).last_hidden_state

    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with torch.inference_mode():
            torch.onnx.export(
                ByName().eval(),
                tuple(sample[n] for n in names),
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return names


def build_onnx_encoders(
    st: Any, model_dir: Path, cache_dir: Path, *, threads: tuple[int, int]
) -> tuple[OnnxEncoder, OnnxEncoder] | None:
    """(small, bulk) encoders with `threads` intra-op threads each, or None (use torch)."""
    try:
        import onnxruntime as ort
    except ImportError:
        log.info("onnxruntime is not installed; embedding with torch")
        return None
    found = _pipeline(st)
    if found is None:
        log.info("model pipeline not supported by the ONNX path; embedding with torch")
        return None
    auto_model, pooling, normalize = found
    path = cache_dir / f"{model_dir.name}-{_cache_key(model_dir)}.onnx"
    try:
        if not path.exists():
            log.info("exporting %s to ONNX at %s (once)", model_dir.name, path)
            _export(auto_model, st.tokenizer, path)
        encoders = []
        for n in threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = n
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            inputs = [i.name for i in session.get_inputs()]
            encoders.append(
                OnnxEncoder(
                    session,
                    st.tokenizer,
                    max_length=st.max_seq_length,
                    pooling=pooling,
                    normalize=normalize,
                    inputs=inputs,
                )
            )
    except Exception as exc:  # any export or runtime failure: torch still works
        log.warning("ONNX path unavailable (%s); embedding with torch", exc)
        return None
    want = st.encode(PROBES, normalize_embeddings=normalize, convert_to_numpy=True)
    got = encoders[0].encode(PROBES)
    diff = float(np.abs(want - got).max())
    if diff > 1e-4:
        log.warning("ONNX embeddings differ from torch by %.2g; embedding with torch", diff)
        return None
    return encoders[0], encoders[1]
