"""Similarity-search primitives, with nothing of memsvc's above them imported.

- `encoders`: sign bits (plain, centred + rotated), int8 / int4 scalar quantization.
- `reference`: NumPy answers every path must give (ties to the lower row).
- `cpu`: FAISS / NumPy scans and rescoring.
- `triton_kernels`: the GPU scans and rescoring; `compile_check` compiles them for sm_80/sm_90.
- `resident`: two-stage tables kept on the device within a memory budget.
- `backend`: picks `triton` or `cpu` (MEMSVC_KERNEL_BACKEND).
"""
