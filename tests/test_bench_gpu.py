"""The GPU benchmark runs end to end on this GPU-less machine (Triton's interpreter, tiny
sizes), so the script is ready to run unattended on the next GPU; and it needs only torch and
Triton of memsvc's dependencies (a GPU machine's image has no SQLAlchemy or FastAPI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


def test_bench_gpu_runs_on_the_interpreter_and_imports_no_sdk(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    script = (
        "import sys\n"
        "from memsvc.evals import bench_gpu\n"
        f"bench_gpu.main(['--device', 'cpu', '--n', '256', '--batch', '1', '2', '--queries', '4',"
        f" '--dim', '64', '--repeat', '1', '--json', {str(out)!r}])\n"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'memsvc.memory') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "heavy: []" in done.stdout
    res = json.loads(out.read_text())
    assert res["copy_gb_per_s"] > 0 and res["k"] == 10
    methods = {r["method"] for r in res["rows"]}
    assert methods == {"torch-fp32", "torch-fp16", "hamming", "two-stage", "int8"}
    assert len(res["rows"]) == 10  # five methods x two batch sizes
    for r in res["rows"]:
        assert r["n"] == 256 and r["ms_per_query"] > 0 and 0 <= r["recall_at_10"] <= 1
        if r["method"].startswith("torch"):
            assert r["recall_at_10"] == 1.0  # exact search is the ground truth
    two = next(r for r in res["rows"] if r["method"] == "two-stage")
    assert two["recall_at_10"] >= 0.8  # 200 candidates of 256 rows, rescored exactly
