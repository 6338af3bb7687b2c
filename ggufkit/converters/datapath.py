"""Convert's data section: every tensor's bytes written at the offset the GGUF header gives it, by a few
workers (ggufkit/workers.py), so a conversion keeps up with the disk whatever the model's size.

Each job is one slice of one tensor and knows where its bytes go:
  - copied blocks (today's layouts) go through the kernel, file to file (copy_file_range at explicit
    offsets): a whole-model tensor in big pieces, a multi-part one piece per part when the parts hold
    runs of its rows;
  - everything else (repacked blocks, the rows of a multi-part tensor cut along its rows' length, rows
    in another order, requantized blocks) is read a slice of rows at a time, made into today's blocks
    and written with pwrite.
Memory is a slice or two per worker (SLICE_BYTES), whatever the model's size.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import gguf
import numpy as np
from gguf.constants import GGUF_DEFAULT_ALIGNMENT

from ggufkit.converters import requantize
from ggufkit.converters.copy import copy_at
from ggufkit.errors import BadInputError
from ggufkit.formats.legacy.parts import RowReader
from ggufkit.workers import default_workers, pwrite_all, run_jobs

if TYPE_CHECKING:
    from ggufkit.converters.engine import TensorPlan

SLICE_BYTES = 8 << 20  # input bytes a job reads, converts and writes
COPY_PIECE = 64 << 20  # bytes one kernel copy job moves (Ctrl-C waits for the jobs running)
MAX_WORKERS = 4  # each holds a slice in and out: memory stays well under 200 MB
Job = Callable[[], int]


def data_offsets(plans: list[TensorPlan], start: int) -> tuple[list[int], int]:
    """Each tensor's data offset (GGUFWriter's layout: each padded to the alignment) and the file's end."""
    offsets = []
    for p in plans:
        start = -(-start // GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT
        offsets.append(start)
        start += p.out_nbytes
    return offsets, start


def write_data(reader: RowReader, plans: list[TensorPlan], dst: int, start: int,
               on_progress: Callable[[int], None] | None = None, workers: int | None = None) -> float | None:
    """Write every tensor's data into `dst` (its header ends at `start`); returns the largest relative weight
    change that rounding f32 scales to f16 made, or None if no scales were rounded."""
    offsets, end = data_offsets(plans, start)
    os.ftruncate(dst, end)  # padding between tensors is zeros; the slices fill the rest in any order
    changes: list[float] = []

    def jobs() -> Iterator[Job]:
        for i, p in enumerate(plans):
            yield from _jobs(reader, i, p, dst, offsets[i], changes)

    run_jobs(jobs(), workers or min(MAX_WORKERS, default_workers()), on_progress)
    return max(changes) if changes else None


def _jobs(reader: RowReader, index: int, p: TensorPlan, dst: int, at: int, changes: list[float]) -> Iterator[Job]:
    if p.action == "copy" and p.rows is None:
        ranges = reader.ranges(index)
        if ranges is not None:  # runs of bytes, one per part, in order: the kernel copies them
            for fd, offset, nbytes in ranges:
                for done in range(0, nbytes, COPY_PIECE):
                    n = min(COPY_PIECE, nbytes - done)
                    yield lambda fd=fd, src=offset + done, to=at + done, n=n: copy_at(fd, dst, src, to, n)
                at += nbytes
            return
    n_rows, row = reader.geometry(p.src)
    out_row = p.out_nbytes // n_rows
    step = max(1, SLICE_BYTES // row)
    for first in range(0, n_rows, step):
        count = min(step, n_rows - first)
        yield lambda first=first, count=count: _slice(reader, index, p, dst, at + first * out_row, first, count, changes)


_local = threading.local()  # each worker's slice buffers, reused: fresh 8 MB buffers cost page faults


def _buffer(name: str, nbytes: int) -> np.ndarray:
    buf = getattr(_local, name, None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(nbytes, np.uint8)
        setattr(_local, name, buf)
    return buf[:nbytes]


def _slice(reader: RowReader, index: int, p: TensorPlan, dst: int, at: int, first: int, count: int,
           changes: list[float]) -> int:
    """Rows [first, first + count) of a tensor, made into today's blocks and written at `at`."""
    if p.rows is None and not reader.model.parts:  # one run of the one file: read into this worker's buffer
        _, row = reader.geometry(p.src)
        raw = _buffer("raw", count * row)
        if os.preadv(reader.fd(), [raw], p.src.offset + first * row) != raw.nbytes:
            raise BadInputError("file changed while being read (shorter than its header says)", reader.model.path)
        raw = raw.reshape(count, row)
    else:
        raw = source_rows(reader, index, p, first, count)
    if p.action == "copy":
        out = raw
    elif p.action == "repack":
        assert p.layout.repack is not None
        blocks_in = raw.reshape(-1, p.layout.nbytes)
        out = _buffer("out", count * (p.out_nbytes // reader.geometry(p.src)[0])).reshape(blocks_in.shape[0], -1)
        out, change = p.layout.repack(blocks_in, out)
        if change is not None:
            changes.append(change)  # list.append is atomic: workers may share the list
    else:
        values = p.layout.dequantize(raw.reshape(-1, p.layout.nbytes)).reshape(raw.shape[0], p.src.shape[0])
        out = requantize.quantize_rows(values, gguf.GGMLQuantizationType(p.out_type))
    pwrite_all(dst, np.ascontiguousarray(out).data, at)
    return raw.nbytes


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
