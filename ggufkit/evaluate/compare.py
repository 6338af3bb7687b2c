"""The models' rows of logits against the base's, 32 rows at a time, in worker threads, tallied in order.

A block's work is numpy on arrays of 32 x n_vocab (log-softmax, KL, Δp, top token): numpy lets go of the
GIL in it, so blocks run in parallel threads. Without overlap (the CPU decodes, with every core) the
blocks of a span are waited for before the next decode, so they may read llama.cpp's logits buffer in
place. With overlap (every model on a GPU, the CPU free) the logits are copied, the blocks run while the
GPU decodes the next span, and the copies held are capped at LOGITS_BUDGET. Results are tallied chunk by
chunk in text order, and only whole chunks count: an interrupted chunk's blocks are dropped.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from ggufkit.evaluate.logits import LOGITS_BUDGET, log_softmax
from ggufkit.evaluate.stats import Tally, chunk_scores, compare_rows

ROWS = 32  # rows of log-probabilities compared at a time

Block = list[tuple[np.ndarray, ...]]  # per model: (nll,) for the base, (nll, kld, dp, same) for the others


def compare_block(logits: list[np.ndarray], targets: np.ndarray) -> Block:
    lp_base = log_softmax(logits[0])
    out: Block = [(chunk_scores(lp_base, targets),)]
    for x in logits[1:]:
        lp = log_softmax(x)
        out.append((chunk_scores(lp, targets), *compare_rows(lp_base, lp, targets)))
    return out


class Comparer:
    def __init__(self, tallies: list[Tally], workers: int, overlap: bool):
        self.tallies, self.overlap = tallies, overlap
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ggufkit-compare")
        self.chunk: list[Future[Block]] = []  # the blocks of the chunk being decoded, in row order
        self.chunks: deque[list[Future[Block]]] = deque()  # whole chunks not yet tallied
        self.held: deque[tuple[list[Future[Block]], int]] = deque()  # copies of logits and their bytes
        self.held_bytes = 0
        self.tallied = 0

    def __enter__(self) -> Comparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, logits: list[np.ndarray], targets: np.ndarray) -> None:
        """Rows of every model's logits (base first) for `targets`, in the order of the text."""
        if self.overlap:
            size = sum(x.nbytes for x in logits)
            while self.held and self.held_bytes + size > LOGITS_BUDGET:
                futures, n = self.held.popleft()
                wait(futures)
                self.held_bytes -= n
            logits = [np.array(x) for x in logits]  # llama.cpp reuses its buffer at the model's next decode
        futures = [self.pool.submit(compare_block, [x[r:r + ROWS] for x in logits], targets[r:r + ROWS])
                   for r in range(0, len(targets), ROWS)]
        self.chunk.extend(futures)
        if self.overlap:
            self.held.append((futures, size))
            self.held_bytes += size
        else:
            wait(futures)  # the views into llama.cpp's buffers must be read before the next decode

    def end_chunk(self) -> None:
        self.chunks.append(self.chunk)
        self.chunk = []
        while self.chunks and all(f.done() for f in self.chunks[0]):
            self._tally(self.chunks.popleft())

    def finish(self) -> int:
        """Tally every whole chunk (waiting for its blocks); drop an unfinished one. Returns chunks tallied."""
        for f in self.chunk:
            f.cancel()
        self.chunk = []
        while self.chunks:
            self._tally(self.chunks.popleft())
        return self.tallied

    def _tally(self, futures: list[Future[Block]]) -> None:
        blocks = [f.result() for f in futures]
        base, *others = (list(zip(*per_model)) for per_model in zip(*blocks))
        self.tallies[0].nll.append(np.concatenate(base[0]))
        for tally, (nll, kld, dp, same) in zip(self.tallies[1:], others):
            tally.nll.append(np.concatenate(nll))
            tally.kld.append(np.concatenate(kld).astype(np.float32))
            tally.dp.append(np.concatenate(dp).astype(np.float32))
            tally.same_top.append(np.concatenate(same))
        self.tallied += 1
