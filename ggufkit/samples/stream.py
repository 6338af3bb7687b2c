"""Sample weights as a stream: random rows drawn in one fixed order, encoded and written where they belong.

Every sample file, whatever its size, format or number of parts, is written the same way: first its
skeleton (headers, tensor records, the file's final size), then its data, a slice of rows at a time, by
a few worker threads that each encode a slice (f16, an era's quantizer, llama.cpp's) and pwrite it at
its place. The random draws stay in one thread, in the order the first writer made them (tensor after
tensor, row after row), so a file's bytes do not depend on the slice size or the number of workers, and
memory stays flat: a 7B model is written in a few hundred MB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ggufkit.workers import pwrite_all, run_jobs

CHUNK_VALUES = 1 << 20  # values drawn, encoded and written at a time (4 MB as float32)
STD = np.float32(0.02)  # of the random weights; norms are 1

Rows = Iterator[tuple[int, np.ndarray]]  # (first row, rows): float32 (n, ne0), or uint8 (n, row bytes) as stored
Encoder = Callable[[np.ndarray], np.ndarray]  # rows as drawn -> uint8 (n, row bytes) as the file stores them


def random_rows(shapes: Iterator[tuple[str, tuple[int, ...]]], seed: int) -> Iterator[tuple[str, Rows]]:
    """(name, its rows) for each (name, numpy shape): 2-D tensors drawn from N(0, STD), 1-D ones all 1.

    Each tensor's rows must be consumed before the next tensor is asked for: they are drawn lazily,
    from one generator, in order."""
    rng = np.random.default_rng(seed)
    for name, shape in shapes:
        yield name, _draw(rng, shape)


def _draw(rng: np.random.Generator, shape: tuple[int, ...]) -> Rows:
    if len(shape) == 1:
        yield 0, np.ones((1, shape[0]), np.float32)
        return
    rows, cols = shape
    step = max(1, CHUNK_VALUES // cols)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        x = rng.standard_normal((n, cols), dtype=np.float32)
        x *= STD
        yield start, x


@dataclass(frozen=True)
class Tensor:
    """A tensor as an output file stores it."""

    name: str  # as the file names it
    ggml_type: int
    ne: tuple[int, ...]  # ne0 first
    row_bytes: int  # one whole row of ne0 values

    @property
    def rows(self) -> int:
        return math.prod(self.ne[1:])

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes


@dataclass(frozen=True)
class Dest:
    """Where a tensor's rows go: (file descriptor, offset of its data) in each part, and how the parts
    share it (`split`, the ggml axis: 0 every part holds a slice of every row, 1 each part a run of
    rows, None every part holds all of it, as the norms of a multi-part model)."""

    pieces: tuple[tuple[int, int], ...]
    split: int | None
    rows: int
    row_bytes: int

    def put(self, start: int, data: np.ndarray) -> int:
        """Write rows [start, start + len(data)), uint8 (n, row bytes); returns the bytes written."""
        n = data.shape[0]
        assert data.shape[1] == self.row_bytes and start + n <= self.rows, (data.shape, start, self)
        parts = len(self.pieces)
        if self.split is None or parts == 1:
            for fd, offset in self.pieces:
                pwrite_all(fd, np.ascontiguousarray(data).data, offset + start * self.row_bytes)
        elif self.split == 0:
            w = self.row_bytes // parts
            for k, (fd, offset) in enumerate(self.pieces):
                pwrite_all(fd, np.ascontiguousarray(data[:, k * w:(k + 1) * w]).data, offset + start * w)
        else:
            per = self.rows // parts
            for k, (fd, offset) in enumerate(self.pieces):
                lo, hi = max(start, k * per), min(start + n, (k + 1) * per)
                if lo < hi:
                    pwrite_all(fd, np.ascontiguousarray(data[lo - start:hi - start]).data,
                               offset + (lo - k * per) * self.row_bytes)
        return data.nbytes


def fill(stream: Iterator[tuple[str, Rows]], targets: dict[str, tuple[Dest, Encoder]],
         on_progress: Callable[[int], None] | None = None, workers: int | None = None) -> None:
    """Encode and write every tensor of `stream` to its (destination, encoder) in `targets`."""

    def jobs() -> Iterator[Callable[[], int]]:
        for name, rows in stream:
            dest, encode = targets[name]
            for start, x in rows:
                yield lambda dest=dest, encode=encode, start=start, x=x: dest.put(start, encode(x))

    run_jobs(jobs(), workers, on_progress)


def f32_rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint8)


def f16_rows(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint8)


def as_stored(x: np.ndarray) -> np.ndarray:
    """Rows read as a file stores them (uint8), written unchanged."""
    return x
