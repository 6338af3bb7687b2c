"""A few of ggml's C functions, for hot loops numpy does slowly, loaded without importing llama_cpp.

numpy converts float32 to float16 in a scalar software loop (~90 ns a value); ggml's
`ggml_fp32_to_fp16_row` does the same round-to-nearest-even conversion some 50 times faster. Only
pure functions are used here, so it does not matter that this is a separate handle on libggml-base
(runtime/native.py explains why functions with global state must be reached through libllama).
`ggml_quantize_chunk` is pure for the types converters/requantize.py asks of it (no importance
matrix, none of the i-quants whose tables ggml_quantize_init builds once).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os

import numpy as np


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "lib", "libggml-base.so")
        if os.path.exists(path):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                return None
            lib.ggml_fp32_to_fp16_row.restype = None
            lib.ggml_fp32_to_fp16_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            lib.ggml_quantize_chunk.restype = ctypes.c_size_t
            lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                                ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            return lib
    return None


def to_f16(values: np.ndarray) -> np.ndarray:
    """float32 -> float16 (round to nearest even, as llama.cpp stores scales), same shape."""
    src = np.ascontiguousarray(values, dtype=np.float32)
    lib = _lib()
    if lib is None:
        with np.errstate(over="ignore"):
            return src.astype(np.float16)
    out = np.empty(src.shape, np.float16)
    lib.ggml_fp32_to_fp16_row(src.ctypes.data, out.ctypes.data, src.size)
    return out


def quantize_rows(values: np.ndarray, ggml_type: int, row_bytes: int) -> np.ndarray | None:
    """(rows, n_per_row) float32 -> (rows, row_bytes) uint8 of `ggml_type` by ggml_quantize_chunk;
    None where no llama.cpp library is found."""
    lib = _lib()
    if lib is None:
        return None
    src = np.ascontiguousarray(values, dtype=np.float32)
    rows, n = src.shape
    out = np.empty((rows, row_bytes), np.uint8)
    done = lib.ggml_quantize_chunk(ggml_type, src.ctypes.data, out.ctypes.data, 0, rows, n, None)
    assert done == out.nbytes, (done, out.nbytes)
    return out
