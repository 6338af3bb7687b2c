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
    """Decodes chunks of `n_ctx` tokens on one model; reuses one llama_batch."""

    def __init__(self, model: Model, n_ctx: int):
        import llama_cpp as L

        self.L, self.model, self.n_ctx = L, model, n_ctx
        self.first = n_ctx // 2  # llama-perplexity scores the second half of each chunk
        self.batch = L.llama_batch_init(n_ctx, 0, 1)
        self.seconds = 0.0  # time spent decoding
        self.tokens = 0  # tokens decoded

    def close(self) -> None:
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None

    def spans(self) -> list[tuple[int, int]]:
        """The scored half in pieces whose logits fit LOGITS_BUDGET (at a 262k vocabulary, all 256 rows
        would be 2 x 268 MB), at least 32 positions each."""
        step = max(32, min(self.n_ctx - self.first, LOGITS_BUDGET // (8 * self.model.n_vocab)) // 32 * 32)
        return [(s, min(s + step, self.n_ctx)) for s in range(self.first, self.n_ctx, step)]

    def decode(self, tokens: list[int], start: int, end: int) -> np.ndarray | None:
        """Decode positions start..end-1 of the chunk `tokens` (start 0 clears the cache first); returns
        their float32 logits (end - start, n_vocab) when they are scored (start >= first), a view into
        llama.cpp's buffer valid until this model's next decode."""
        L, b = self.L, self.batch
        assert len(tokens) == self.n_ctx
        if start == 0:
            L.llama_memory_clear(L.llama_get_memory(self.model.ctx), True)
        scored = start >= self.first
        for i in range(start, end):
            k = i - start
            b.token[k] = tokens[i]
            b.pos[k] = i
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = 0
            b.logits[k] = scored
        b.n_tokens = end - start
        started = time.perf_counter()
        rc = L.llama_decode(self.model.ctx, b)
        if rc != 0:
            raise LlamaFailure(f"llama.cpp could not decode a chunk (llama_decode returned {rc})", self.model.params.path)
        L.llama_synchronize(self.model.ctx)
        self.seconds += time.perf_counter() - started
        self.tokens += end - start
        if not scored:
            return None
        ptr = L.llama_get_logits(self.model.ctx)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(end - start, self.model.n_vocab))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities in float32 (a new array; `logits` is left as it is)."""
    out = logits - logits.max(axis=1, keepdims=True)
    out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
    return out
