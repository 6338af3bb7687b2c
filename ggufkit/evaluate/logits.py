"""One chunk through one model, as llama-perplexity feeds it: the chunk's tokens (the first replaced by
BOS when the model adds one), positions 0..n_ctx-1, logits only for the scored second half."""

from __future__ import annotations

import ctypes
import time

import numpy as np

from ggufkit.errors import LlamaFailure
from ggufkit.runtime.model import Model


# llama.cpp keeps a decoded batch's logits twice (graph output, logits buffer): cap what one batch of
# scored positions may hold, so a 262k vocabulary decodes 128 at a time and a small one the whole half
# at once (one batch is fastest).
LOGITS_BUDGET = 256 << 20


class ChunkRunner:
    """Decodes chunks of `n_ctx` tokens on one model; reuses one llama_batch.

    `launch` queues a decode and returns (on a GPU llama_decode returns before the work is done), `finish`
    waits for it: between the two the caller's CPU is free. The time from launch to finish is this model's
    own decoding time (the caller finishes one model before it launches the next)."""

    def __init__(self, model: Model, n_ctx: int):
        import llama_cpp as L

        self.L, self.model, self.n_ctx = L, model, n_ctx
        self.first = n_ctx // 2  # llama-perplexity scores the second half of each chunk
        self.batch = L.llama_batch_init(n_ctx, 0, 1)
        self.seconds = 0.0  # time spent decoding
        self.tokens = 0  # tokens decoded
        self._pending: tuple[int, int, float] | None = None

    def close(self) -> None:
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None

    def spans(self) -> list[tuple[int, int]]:
        """The chunk in decodes: the whole chunk in one batch, as llama-perplexity does, when the scored
        half's logits fit LOGITS_BUDGET; else the first half, then the scored half in pieces that fit (at a
        262k vocabulary, all 256 rows would be 2 x 268 MB), at least 32 positions each."""
        scored = self.n_ctx - self.first
        if scored * 8 * self.model.n_vocab <= LOGITS_BUDGET:
            return [(0, self.n_ctx)]
        step = max(32, min(scored, LOGITS_BUDGET // (8 * self.model.n_vocab)) // 32 * 32)
        return [(0, self.first)] + [(s, min(s + step, self.n_ctx)) for s in range(self.first, self.n_ctx, step)]

    def launch(self, tokens: list[int], start: int, end: int) -> None:
        """Queue the decode of positions start..end-1 of the chunk `tokens` (start 0 clears the cache first),
        with logits for the scored positions (>= first)."""
        L, b = self.L, self.batch
        assert len(tokens) == self.n_ctx and self._pending is None
        if start == 0:
            L.llama_memory_clear(L.llama_get_memory(self.model.ctx), True)
        first = self.first
        for i in range(start, end):
            k = i - start
            b.token[k] = tokens[i]
            b.pos[k] = i
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = 0
            b.logits[k] = i >= first
        b.n_tokens = end - start
        started = time.perf_counter()
        rc = L.llama_decode(self.model.ctx, b)
        if rc != 0:
            raise LlamaFailure(f"llama.cpp could not decode a chunk (llama_decode returned {rc})", self.model.params.path)
        self._pending = (start, end, started)

    def finish(self) -> np.ndarray | None:
        """Wait for the launched decode; return the float32 logits of its scored positions
        (rows: max(start, first) .. end-1), a view into llama.cpp's buffer valid until this model's next
        decode, or None when it scored none."""
        assert self._pending is not None
        start, end, started = self._pending
        self._pending = None
        self.L.llama_synchronize(self.model.ctx)
        self.seconds += time.perf_counter() - started
        self.tokens += end - start
        rows = end - max(start, self.first)
        if rows <= 0:
            return None
        ptr = self.L.llama_get_logits(self.model.ctx)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(rows, self.model.n_vocab))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities in float32 (a new array; `logits` is left as it is)."""
    out = logits - logits.max(axis=1, keepdims=True)
    out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
    return out
