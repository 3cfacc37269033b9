"""Every Triton kernel compiles for real GPUs (sm_80, sm_90) on this GPU-less machine.

The interpreter (TRITON_INTERPRET=1, used by tests/test_kernels.py) accepts code that no GPU
compiles; `triton.compile` with a GPUTarget runs the real pipeline down to a cubin with the
ptxas that ships with Triton. Runs in a subprocess: the interpreter setting of the kernel tests
is process-wide and decided when the kernels are defined.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")


def test_every_kernel_compiles_for_sm80_and_sm90_without_spills() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-m", "memsvc.kernels.compile_check", "--arch", "80", "90", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for r in rows:  # the report, shown with pytest -s or on failure
        print(f"sm_{r['arch']} {r['kernel']}: {r['registers']} registers, {r['spills']} spills")
    kernels = {r["kernel"] for r in rows}
    assert kernels >= {"hamming_batch1", "hamming_batch16_k200", "int8", "rescore_fp32"}
    assert {(r["kernel"], r["arch"]) for r in rows} == {(k, a) for k in kernels for a in (80, 90)}
    for r in rows:
        assert r["spills"] == 0, r
        assert 0 < r["registers"] <= 255, r
        if r["kernel"].startswith("int8"):
            assert r["tensor_cores"], r  # int8 mma with int32 accumulation
        if r["kernel"].startswith("hamming"):
            assert r["hardware_popcount"], r  # the SWAR trick became popc
