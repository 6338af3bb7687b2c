"""The quantizers of pre-GGUF llama.cpp, in numpy, float32 step for float32 step, for sample files.

Each era's `quantize` tool called ggml's reference row quantizers (`quantize_row_*_reference`, or in
March 2023 `ggml_quantize_q4_*` in utils.cpp). These reproduce them at the commits the sample maker
imitates (ggufkit's closing notes name them and how the outputs were compared with the real tools):
  GGML, GGMF       Q4_0: d = amax/7, q = round(x/d) + 8; Q4_1: d = (max-min)/15, q = round((x-min)/d)
                   (GGML: max starts at FLT_MIN, a bug GGMF fixed)
  GGJT v1          Q4_0: d = max/-8 (signed max), q = min(15, round(x/d) + 8); Q4_1 as before;
                   Q4_2 (16 values): d = max/-8, q = min(15, trunc(x/d + 8.5)); Q4_3 (16): q = trunc((x-min)/d + 0.5);
                   Q5_0: d = max/-16, q = min(31, trunc(x/d + 16.5)); Q5_1: d = (max-min)/31, q = trunc(.. + 0.5);
                   Q8_0: d = amax/127, q = round(x/d)
  GGJT v2          Q4_0: q = min(15, trunc(x/d + 8.5)); Q4_1: q = min(15, trunc((x-min)/d + 0.5)); Q5/Q8 as v1
`round` is C's roundf (halves away from zero); `trunc` a C cast of a float32 sum. Block layouts (scale
width, nibble order) come from formats/legacy/blocks.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gguf.constants import GGMLQuantizationType as T

from ggufkit.formats.legacy.blocks import Q4_2, Q4_3

F32 = np.float32
Quantizer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, np.ndarray]]


def _roundf(v: np.ndarray) -> np.ndarray:
    """C roundf: in float64 the +0.5 is exact for any float32, so no double rounding."""
    v = v.astype(np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _trunc_add(v: np.ndarray, add: float) -> np.ndarray:
    return np.trunc((v + F32(add)).astype(F32))  # the sum rounds to float32 first, as in C


def _inv(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d != 0, F32(1.0) / d, F32(0.0)).astype(F32)


def _signed_max(x: np.ndarray) -> np.ndarray:
    """The first value of largest magnitude in each block (the loops compared with a strict <)."""
    return np.take_along_axis(x, np.argmax(np.abs(x), axis=1)[:, None], axis=1)


def _min_max(x: np.ndarray, levels: int, max_from: float = -np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = x.min(axis=1, keepdims=True), np.maximum(x.max(axis=1, keepdims=True), F32(max_from))
    d = ((hi - lo) / F32(levels)).astype(F32)
    return lo, d, ((x - lo) * _inv(d)).astype(F32)


def q4_0_amax7(x):
    d = (np.abs(x).max(axis=1, keepdims=True) / F32(7)).astype(F32)
    return d, None, _roundf((x * _inv(d)).astype(F32)) + 8


def q4_0_max8_round(x):
    d = (_signed_max(x) / F32(-8)).astype(F32)
    return d, None, np.minimum(15, _roundf((x * _inv(d)).astype(F32)) + 8)


def q4_0_max8_trunc(x):
    d = (_signed_max(x) / F32(-8)).astype(F32)
    return d, None, np.minimum(15, _trunc_add((x * _inv(d)).astype(F32), 8.5))


def q4_1_round(x):
    lo, d, v = _min_max(x, 15)
    return d, lo, _roundf(v)


def q4_1_round_flt_min(x):
    """March 2023 (utils.cpp): the running max started at FLT_MIN, the smallest positive float, so a block of
    negative values gets max = FLT_MIN; an all-zero block gets NaN codes, which x86 turns into 0."""
    lo, d, v = _min_max(x, 15, max_from=np.finfo(np.float32).tiny)
    with np.errstate(invalid="ignore"):
        q = _roundf(v)
    return d, lo, np.where(np.isfinite(q), q, 0)


def q4_1_trunc(x):
    lo, d, v = _min_max(x, 15)
    return d, lo, np.minimum(15, _trunc_add(v, 0.5))


def q5_0(x):
    d = (_signed_max(x) / F32(-16)).astype(F32)
    return d, None, np.minimum(31, _trunc_add((x * _inv(d)).astype(F32), 16.5))


def q5_1(x):
    lo, d, v = _min_max(x, 31)
    return d, lo, _trunc_add(v, 0.5)


def q8_0(x):
    d = (np.abs(x).max(axis=1, keepdims=True) / F32(127)).astype(F32)
    return d, None, _roundf((x * _inv(d)).astype(F32))


def q4_3(x):
    lo, d, v = _min_max(x, 15)
    return d, lo, _trunc_add(v, 0.5)


# (container, version) -> ggml type -> quantizer of the commit the sample maker imitates
ERAS: dict[tuple[str, int | None], dict[int, Quantizer]] = {
    ("GGML", None): {T.Q4_0: q4_0_amax7, T.Q4_1: q4_1_round_flt_min},
    ("GGMF", 1): {T.Q4_0: q4_0_amax7, T.Q4_1: q4_1_round},
    ("GGJT", 1): {T.Q4_0: q4_0_max8_round, T.Q4_1: q4_1_round, Q4_2: q4_0_max8_trunc, Q4_3: q4_3,
                  T.Q5_0: q5_0, T.Q5_1: q5_1, T.Q8_0: q8_0},
    ("GGJT", 2): {T.Q4_0: q4_0_max8_trunc, T.Q4_1: q4_1_trunc, T.Q5_0: q5_0, T.Q5_1: q5_1, T.Q8_0: q8_0},
}
# llama_ftype of each era's "mostly" types
FTYPES = {T.F32: 0, T.F16: 1, T.Q4_0: 2, T.Q4_1: 3, Q4_2: 5, Q4_3: 6, T.Q8_0: 7, T.Q5_0: 8, T.Q5_1: 9}


def _fused(x: np.ndarray, levels: int) -> tuple[np.ndarray, None, np.ndarray]:
    """Q4_0 (levels 8) / Q5_0 (16) as the ggml examples' quantize tools computed them when built for
    x86-64 with FMA (-march=native; GCC contracts x*id + 8.5f into one fused multiply-add by default):
    the product and the sum are rounded to float32 once. Today's reference quantizer rounds twice, and
    differs in ~1 value in 10^4; this matched the tools built at ggml 82248c97 on every block compared."""
    d = (_signed_max(x) / F32(-levels)).astype(F32)
    v = (x.astype(np.float64) * _inv(d).astype(np.float64) + (levels + 0.5)).astype(F32)
    return d, None, np.minimum(2 * levels - 1, np.trunc(v))


# the ggml examples' quantize tools (GGML_QNT_VERSION 2): these two by _fused, the others as today
GGML_EXAMPLES: dict[int, Quantizer] = {T.Q4_0: lambda x: _fused(x, 8), T.Q5_0: lambda x: _fused(x, 16)}
