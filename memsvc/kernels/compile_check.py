"""Compile every Triton kernel for real GPU targets, with no GPU: `python -m
memsvc.kernels.compile_check [--arch 80 90]`.

`TRITON_INTERPRET=1` runs code that no GPU compiles (it never checks, say, that a global is a
constexpr), so the interpreter tests alone prove nothing about a GPU. `triton.compile` with a
`GPUTarget` runs the whole pipeline down to a cubin with the ptxas that ships with Triton, on
any machine. It prints each kernel's registers, spills and shared memory per target and exits
non-zero if any kernel fails to compile or spills.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Compiled:
    kernel: str
    arch: int
    registers: int
    spills: int
    shared_bytes: int
    tensor_cores: bool  # mma instructions in the PTX
    hardware_popcount: bool  # popc instructions in the PTX
    seconds: float


def compile_all(archs: list[int]) -> list[Compiled]:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter compiles nothing")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from memsvc.kernels.triton_kernels import KERNELS

    done = []
    for arch in archs:
        target = GPUTarget("cuda", arch, 32)
        for name, (fn, signature, constexprs, options) in KERNELS.items():
            sig = dict(signature) | {c: "constexpr" for c in constexprs}
            t = time.perf_counter()
            src = ASTSource(fn, sig, constexprs=constexprs)
            kernel = triton.compile(src, target=target, options=options)
            meta = kernel.metadata
            regs, spills = _regs_and_spills(kernel)
            ptx = kernel.asm["ptx"]
            done.append(
                Compiled(
                    name,
                    arch,
                    regs,
                    spills,
                    int(meta.shared),
                    "mma." in ptx,
                    "popc." in ptx,
                    time.perf_counter() - t,
                )
            )
    return done


def _regs_and_spills(kernel: Any) -> tuple[int, int]:
    """Registers per thread and spilled bytes: `ptxas -v` over the kernel's PTX, with the
    ptxas Triton ships (a compiled kernel reports these itself only once loaded on a GPU)."""
    from triton.backends.nvidia.compiler import get_ptxas

    arch = kernel.metadata.target.arch
    ptxas = get_ptxas(arch)
    ptxas = getattr(ptxas, "path", None) or ptxas[0]
    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(kernel.asm["ptx"])
        f.flush()
        log = subprocess.run(
            [ptxas, "-v", f"--gpu-name={gpu}", f.name, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    if regs is None:
        raise RuntimeError(f"no register count in ptxas -v output:\n{log}")
    return int(regs.group(1)), int(spills.group(1)) if spills else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--json", action="store_true", help="one JSON line per kernel")
    args = ap.parse_args(argv)
    rows = compile_all(args.arch)
    for r in rows:
        if args.json:
            print(json.dumps(asdict(r)))
        else:
            print(
                f"sm_{r.arch}  {r.kernel:22s} {r.registers:4d} registers  {r.spills:4d} spill "
                f"bytes  {r.shared_bytes:6d} B shared"
                f"{'  tensor cores' if r.tensor_cores else ''}"
                f"{'  popc' if r.hardware_popcount else ''}  ({r.seconds:.1f} s)"
            )
    return 1 if any(r.spills for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
