"""One chunk through one model, as llama-perplexity feeds it: the chunk's tokens (the first replaced by
BOS when the model adds one), positions 0..n_ctx-1, logits only for the scored second half."""

from __future__ import annotations

import ctypes
import time

import numpy as np

from ggufkit.errors import LlamaFailure
from ggufkit.runtime.model import Model


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

    def logits(self, tokens: list[int]) -> np.ndarray:
        """float32 logits (n_ctx - first, n_vocab) of positions first..n_ctx-1; a view into llama.cpp's buffer,
        valid until the next decode."""
        L, b, n = self.L, self.batch, len(tokens)
        assert n == self.n_ctx
        L.llama_memory_clear(L.llama_get_memory(self.model.ctx), True)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = i >= self.first
        b.n_tokens = n
        started = time.perf_counter()
        rc = L.llama_decode(self.model.ctx, b)
        if rc != 0:
            raise LlamaFailure(f"llama.cpp could not decode a chunk (llama_decode returned {rc})", self.model.params.path)
        L.llama_synchronize(self.model.ctx)
        self.seconds += time.perf_counter() - started
        self.tokens += n
        ptr = L.llama_get_logits(self.model.ctx)
        rows = n - self.first
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(rows, self.model.n_vocab))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities in float32 (a new array; `logits` is left as it is)."""
    out = logits - logits.max(axis=1, keepdims=True)
    out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
    return out
