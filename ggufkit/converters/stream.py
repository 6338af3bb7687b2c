"""A tensor's data, streamed: its source rows (in the order the family wants them) read, repacked or
requantized and written a chunk of rows at a time, so memory stays flat whatever the model size."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import gguf
import numpy as np
from gguf.constants import GGUF_DEFAULT_ALIGNMENT

from ggufkit.converters import requantize
from ggufkit.converters.copy import write_all
from ggufkit.formats.legacy.parts import RowReader

if TYPE_CHECKING:
    from ggufkit.converters.engine import TensorPlan

ProgressFn = Callable[[int], None]  # called with the number of input bytes just converted
CHUNK_BYTES = 16 << 20  # rows read, repacked and written at a time


def source_rows(reader: RowReader, index: int, p: TensorPlan, start: int, count: int) -> np.ndarray:
    """Output rows [start, start + count) of a tensor: its source rows, permuted if the plan says so."""
    if p.rows is None:
        return reader.rows(index, start, count)
    if len(p.src.shape) == 1:  # a fused bias: whole F32/F16 elements permuted
        whole = reader.rows(index, 0, 1).reshape(p.src.shape[0], -1)
        return np.ascontiguousarray(whole[p.rows]).reshape(1, -1)
    want = p.rows[start:start + count]
    # read runs of consecutive source rows (a permuted QKV is runs of head_dim rows)
    breaks = np.flatnonzero(np.diff(want) != 1) + 1
    runs = np.split(want, breaks)
    return np.concatenate([reader.rows(index, int(r[0]), len(r)) for r in runs], axis=0)


def stream_tensor(reader: RowReader, index: int, p: TensorPlan, dst: int, on_progress: ProgressFn | None) -> float | None:
    """Write one tensor a chunk of rows at a time; returns the largest scale change if scales were rounded."""
    n_rows, row = reader.geometry(p.src)
    step = max(1, CHUNK_BYTES // row)
    worst: float | None = None
    for start in range(0, n_rows, step):
        raw = source_rows(reader, index, p, start, min(step, n_rows - start))
        if p.action == "copy":
            out = raw
        else:
            blocks_in = raw.reshape(-1, p.layout.nbytes)
            if p.action == "repack":
                assert p.layout.repack is not None
                out, change = p.layout.repack(blocks_in)
                if change is not None:
                    worst = max(worst or 0.0, change)
            else:
                values = p.layout.dequantize(blocks_in).reshape(raw.shape[0], p.src.shape[0])
                out = requantize.quantize_rows(values, gguf.GGMLQuantizationType(p.out_type))
        write_all(dst, np.ascontiguousarray(out).data)
        if on_progress is not None:
            on_progress(raw.nbytes)
    return worst


def pad(fd: int) -> None:
    pad = -os.lseek(fd, 0, os.SEEK_CUR) % GGUF_DEFAULT_ALIGNMENT
    if pad:
        os.write(fd, b"\0" * pad)
