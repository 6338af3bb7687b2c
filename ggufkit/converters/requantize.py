"""Requantize rows with llama.cpp's own quantizer (ggml_quantize_chunk), for blocks no type of today holds.

Q4_2 and Q4_3 (April 2023, 16-element blocks) were removed from ggml; their values are dequantized and
quantized again to a surviving type, which is lossy and reported as such.
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

from ggufkit import ggml_lib
from ggufkit.errors import BadInputError, GgufkitError

# What `--requantize-to` may name: types whose rows need no importance matrix and fit any LLaMA row length.
TARGETS = (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.F16, T.F32)
DEFAULT_TARGET = {4: T.Q4_0, 5: T.Q4_1}  # Q4_2 (d only) -> Q4_0, Q4_3 (d and min) -> Q4_1
FTYPE_OF = {T.F32: 0, T.F16: 1, T.Q4_0: 2, T.Q4_1: 3, T.Q8_0: 7, T.Q5_0: 8, T.Q5_1: 9}


def target(name: str | None) -> T | None:
    if name is None:
        return None
    try:
        t = T[name.upper()]
    except KeyError:
        t = None
    if t not in TARGETS:
        raise BadInputError(f"--requantize-to {name}: choose one of {', '.join(x.name.lower() for x in TARGETS)}")
    return t


def row_bytes(t: T, n_per_row: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    return n_per_row // block * size


def quantize_rows(values: np.ndarray, t: T) -> np.ndarray:
    """(rows, n_per_row) float32 -> (rows, row bytes) uint8 of type `t`, by ggml_quantize_chunk."""
    out = ggml_lib.quantize_rows(values, int(t), row_bytes(t, values.shape[1]))
    if out is None:
        raise GgufkitError("llama.cpp's ggml library was not found: cannot requantize")
    return out
