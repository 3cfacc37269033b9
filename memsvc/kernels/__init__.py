"""Similarity-search kernels (binarized and quantized scans, rescoring).

Nothing here yet: the store searches with exact FAISS (see store/vector_index.py) until the
kernels issue lands its Triton, CPU and reference paths behind one interface.
"""
