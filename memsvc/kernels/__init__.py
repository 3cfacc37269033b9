"""Similarity-search primitives: binarize and quantize, Hamming and int8 top-k, exact rescoring.

Nothing of memsvc's above this package is imported here (tests/test_layers.py checks it), and
importing the package imports no module: each is loaded when used. NumPy and FAISS are
required; torch and Triton (the `memsvc[gpu]` extra) only for the Triton backend, imported
lazily, so a machine without them never loads them. `kernels/README.md` has the same map.

`encoders`: the codes the scans read: 1-bit sign codes (plain, and centered + randomly
rotated as RaBitQ starts), int8 and int4 symmetric scalar quantization calibrated per
dimension, and `to_words` (the int32 layout the Triton kernels read). NumPy only.
Tested by tests/test_kernels.py (encoders) and, through the store, tests/test_two_stage.py.

`reference`: slow, obvious NumPy answers to every search, ties to the lower row; used only by
tests, which compare both backends with it. NumPy only. tests/test_kernels.py.

`backend`: the `KernelBackend` interface (scanners, stateless top-k scans, rescoring, the
two-stage search, a device-resident table) and `get_backend(name)`, which picks `cpu` or
`triton` once (argument, else MEMSVC_KERNEL_BACKEND, else by device; asking for `triton`
without Triton raises ImportError naming `memsvc[gpu]`). No optional dependency itself.
tests/test_kernels.py (registry and the interface over both backends), tests/test_install.py
(the hint with the extra missing).

`cpu`: `CpuBackend`: FAISS where it is fastest (IndexBinaryFlat / knn_hamming for sign codes,
SQ8), NumPy BLAS for int8 codes and rescoring. FAISS, NumPy. tests/test_kernels.py.

`triton_kernels`: `TritonBackend` and its kernels: tiled Hamming top-k (histogram selection,
no sort), int8 top-k on tensor cores, exact rescoring from float32 or float16, and the
two-stage search that keeps candidates on the device. torch, Triton. tests/test_kernels.py
(under TRITON_INTERPRET=1 when there is no GPU), tests/test_bench_gpu.py.

`compile_check`: compiles every Triton kernel for sm_80 and sm_90 without a GPU and reports
registers and spills (`python -m memsvc.kernels.compile_check`). Triton (and its ptxas).
tests/test_kernel_compile.py.

`resident`: two-stage tables kept on the device between searches, sending only changed rows,
within one device-memory budget (MEMSVC_GPU_MEMORY_BYTES) that evicts the least recently
searched. torch, Triton. tests/test_resident.py.
"""
