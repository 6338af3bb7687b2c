"""Two tensors' data compared in bounded pieces: bytes (same or not), or values (max |Δ| and RMSE).

Values are gguf-py's dequantization (`gguf.quants.dequantize`) of a block of rows at a time from each file,
so memory stays a few MiB whatever the tensor's size, and a tensor of another type in each file (Q4_1
against Q8_0) is compared as the numbers it stands for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ggufkit.formats.ggml_types import TensorInfo

BYTES_PIECE = 16 << 20  # read from each file at a time to compare bytes
VALUES_PIECE = 1 << 20  # values dequantized from each file at a time
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Located:
    """A tensor and an open descriptor of the file holding its data."""

    fd: int
    tensor: TensorInfo


def _read(fd: int, offset: int, n: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise OSError(f"file ended {n - len(data)} bytes early")
    return data


def same_bytes(a: Located, b: Located, on_progress: ProgressFn | None = None) -> bool:
    """Whether the two tensors' data are byte for byte the same (sizes already equal); stops at the first difference."""
    n = a.tensor.nbytes
    for start in range(0, n, BYTES_PIECE):
        size = min(BYTES_PIECE, n - start)
        if _read(a.fd, a.tensor.offset + start, size) != _read(b.fd, b.tensor.offset + start, size):
            return False
        if on_progress is not None:
            on_progress(size)
    return True


def value_difference(a: Located, b: Located, on_progress: ProgressFn | None = None) -> dict[str, float]:
    """max |a - b| and the root mean square of a - b over every element (same shape, any types).

    Raises NotImplementedError for a type gguf-py cannot dequantize."""
    from gguf import GGMLQuantizationType

    ta, tb = a.tensor, b.tensor
    row = ta.shape[0]
    rows = ta.n_elements // row
    row_a, row_b = ta.nbytes // rows, tb.nbytes // rows
    qa, qb = GGMLQuantizationType(ta.ggml_type), GGMLQuantizationType(tb.ggml_type)
    step = max(1, VALUES_PIECE // row)
    worst, squares = 0.0, 0.0
    for start in range(0, rows, step):
        count = min(step, rows - start)
        va = _values(a.fd, ta.offset + start * row_a, count, row_a, qa)
        vb = _values(b.fd, tb.offset + start * row_b, count, row_b, qb)
        d = (va.astype(np.float64) - vb).ravel()
        if d.size:
            worst = max(worst, float(np.max(np.abs(d))))
            squares += float(np.dot(d, d))
        if on_progress is not None:
            on_progress(count * (row_a + row_b))
    return {"max_abs_diff": worst, "rmse": math.sqrt(squares / max(1, ta.n_elements))}


def _values(fd: int, offset: int, rows: int, row_bytes: int, qtype) -> np.ndarray:  # noqa: ANN001
    from gguf.quants import dequantize

    raw = np.frombuffer(_read(fd, offset, rows * row_bytes), dtype=np.uint8).reshape(rows, row_bytes)
    return dequantize(raw, qtype).reshape(rows, -1)
