"""Run a text through a model chunk by chunk, gathering the importance matrix as llama-imatrix does.

The text, its chunks, BOS and the scored half are eval's (evaluate/text.py). The batches are llama-imatrix's
(tools/imatrix/imatrix.cpp, compute_imatrix): its default batch of 2048 tokens holds 2048 / ctx chunks side
by side, one sequence each, in a context of that many cells, split by llama.cpp into micro-batches of 512;
every position asks for its logits (llama.cpp otherwise skips the last layer's feed-forward for rows that
give no output, and that layer's counts would differ). Laid out the same, the sums come out in the same
order, bit for bit. Where the logits of so many positions would pass LOGITS_BUDGET (a large vocabulary),
fewer chunks go side by side; where one chunk's would, it is decoded in pieces of at least 16 tokens
(llama-imatrix leaves smaller micro-batches out). The running perplexity of the scored halves is its too.

Ctrl-C (KeyboardInterrupt): the sums go back to where the batch under way started, and what the whole
chunks gave is returned, marked partial.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf.constants import Keys

from ggufkit.errors import BadInputError, LlamaFailure
from ggufkit.evaluate.logits import LOGITS_BUDGET, log_softmax
from ggufkit.evaluate.stats import Tally, chunk_scores
from ggufkit.evaluate.text import TextChunks, check_ctx, cut_while_loading
from ggufkit.imatrix.matrix import Matrix, check_matches

BATCH = 2048  # llama-imatrix's batch (common_params.n_batch): chunks side by side
UBATCH = 512  # its micro-batch (common_params.n_ubatch)
ROWS = 32  # rows of logits turned into log-probabilities at a time (as eval)
SIDE_BY_SIDE_BUDGET = 4 * LOGITS_BUDGET  # logits buffer of a whole batch: 4 x 512 x 49k-token SmolLM2 fits


@dataclass
class Progress:
    chunks: int  # done
    total: int
    ppl: float  # running perplexity of the scored halves
    tokens_per_second: float


@dataclass
class Computed:
    matrix: Matrix
    chunks: int  # chunks gathered
    chunks_total: int  # chunks asked for
    text_tokens: int
    ppl: float
    ppl_err: float
    tokens_per_second: float
    seconds: float  # decoding, callback included
    partial: bool


@dataclass(frozen=True)
class Layout:
    """How chunks are decoded: `n_seq` chunks per batch, each in `pieces` (one whole piece unless n_seq is 1)."""

    n_seq: int
    pieces: tuple[tuple[int, int], ...]
    ubatch: int

    @property
    def batch(self) -> int:
        return self.n_seq * max(e - s for s, e in self.pieces)


def layout(ctx: int, n_vocab: int) -> Layout:
    row = 4 * max(n_vocab, 1)  # one position's logits
    n_seq = max(1, min(BATCH // ctx, SIDE_BY_SIDE_BUDGET // (row * ctx)))
    if n_seq > 1 or 2 * ctx * row <= LOGITS_BUDGET * 4:  # the logits buffer, and the graph's micro-batch of them
        return Layout(n_seq, ((0, ctx),), min(UBATCH, n_seq * ctx))
    step = max(32, min(UBATCH, LOGITS_BUDGET // (2 * row)) // 32 * 32)
    n = -(-ctx // step)  # as few pieces as can be, of nearly equal length: none under 16 (ctx >= 16)
    bounds = [ctx * k // n for k in range(n + 1)]
    return Layout(1, tuple(zip(bounds[:-1], bounds[1:])), max(e - s for s, e in zip(bounds[:-1], bounds[1:])))


def compute(source: Path, text: str, dataset: str, *, ctx: int = 512, chunks: int | None = None,
            threads: int | None = None, gpu_layers: int | str | None = None, process_output: bool = False,
            start: Matrix | None = None, on_progress: Callable[[Progress], None] | None = None,
            on_notice: Callable[[str], None] | None = None) -> Computed:
    """`start`: matrices loaded with --in-file, added to (in place). Raises KeyboardInterrupt if stopped
    before the first chunk is whole."""
    from ggufkit.imatrix.collect import Collector
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams
    from ggufkit.runtime.prepare import prepare_model
    from ggufkit.runtime.settings import default_threads, parse_gpu_layers

    check_ctx(ctx)
    if chunks is not None and chunks < 1:
        raise BadInputError(f"--chunks must be at least 1, not {chunks}")
    prepared = prepare_model(source, on_notice)
    matrix = start if start is not None else Matrix(ctx)
    if matrix.entries:
        check_matches(matrix, prepared.gguf, "--in-file", source)
    matrix.chunk_size = ctx
    matrix.datasets.append(dataset)
    collector = Collector(matrix, process_output)
    plan = layout(ctx, len(prepared.gguf.kv.get(Keys.Tokenizer.LIST) or ()))
    params = LoadParams(prepared.path, n_ctx=plan.n_seq * ctx, n_batch=plan.batch, n_ubatch=plan.ubatch,
                        n_seq_max=plan.n_seq, warmup=False, n_threads=threads or default_threads(),
                        n_gpu_layers=parse_gpu_layers(gpu_layers), eval_callback=collector.callback)
    def open_decoder() -> _Decoder:
        model = load(params)
        try:
            return _Decoder(model, plan)
        except BaseException:
            model.close()
            raise

    decoder, cut = cut_while_loading(prepared.path, text, ctx, chunks, open_decoder, _Decoder.close_all)
    try:
        return _run(decoder, collector, cut, on_progress)
    finally:
        decoder.close_all()


def _run(decoder: _Decoder, collector, chunks: TextChunks, on_progress: Callable[[Progress], None] | None) -> Computed:
    """One entry in tally.nll per whole chunk: Ctrl-C anywhere leaves the sums and it in step."""
    matrix, tally = collector.matrix, Tally()
    started = time.perf_counter()
    try:
        for first in range(0, chunks.count, decoder.plan.n_seq):
            group = list(range(first, min(first + decoder.plan.n_seq, chunks.count)))
            saved, n_scored = matrix.snapshot(), len(tally.nll)
            try:
                tally.nll.extend(decoder.run(collector, chunks, group))
            except KeyboardInterrupt:
                matrix.restore(saved)
                del tally.nll[n_scored:]
                raise
            if on_progress is not None:
                on_progress(Progress(len(tally.nll), chunks.count, tally.perplexity()["ppl"], decoder.speed))
    except KeyboardInterrupt:
        matrix.partial = True
        if not tally.nll:
            raise
    ppl = tally.perplexity()
    return Computed(matrix, len(tally.nll), chunks.count, len(chunks.tokens), ppl["ppl"], ppl["ppl_err"],
                    decoder.speed, time.perf_counter() - started, matrix.partial)


class _Decoder:
    """Decodes groups of chunks, one sequence per chunk, into one reused llama_batch."""

    def __init__(self, model, plan: Layout):
        import llama_cpp as L

        self.L, self.model, self.plan = L, model, plan
        self.batch = L.llama_batch_init(plan.batch, 0, 1)
        self.seconds = 0.0
        self.tokens = 0

    @property
    def speed(self) -> float:
        return self.tokens / self.seconds if self.seconds else math.nan

    def close_all(self) -> None:
        """The batch, then the model."""
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None
        self.model.close()

    def run(self, collector, chunks: TextChunks, group: list[int]) -> list[np.ndarray]:
        """Decode chunks `group` side by side, piece by piece; the scored halves' negative log-likelihoods."""
        L, b, ctx, first = self.L, self.batch, chunks.ctx, chunks.first
        tokens = [chunks.chunk(i) for i in group]
        nll: list[list[np.ndarray]] = [[] for _ in group]
        L.llama_memory_clear(L.llama_get_memory(self.model.ctx), True)
        for start, end in self.plan.pieces:
            width = end - start
            for q, chunk in enumerate(tokens):  # chunk q's positions start..end-1, sequence q, all outputs
                for k in range(width):
                    j = q * width + k
                    b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = chunk[start + k], start + k, 1, True
                    b.seq_id[j][0] = q
            b.n_tokens = width * len(group)
            began = time.perf_counter()
            rc = L.llama_decode(self.model.ctx, b)
            failure = collector.take_failure()
            if failure is not None:
                raise failure
            if rc != 0:
                raise LlamaFailure(f"llama.cpp could not decode a chunk (llama_decode returned {rc})",
                                   self.model.params.path)
            L.llama_synchronize(self.model.ctx)
            self.seconds += time.perf_counter() - began
            self.tokens += b.n_tokens
            lo, hi = max(start, first), min(end, ctx - 1)  # the last position predicts nothing
            if lo >= hi:
                continue
            logits = np.ctypeslib.as_array(ctypes.cast(L.llama_get_logits(self.model.ctx), ctypes.POINTER(ctypes.c_float)),
                                           shape=(b.n_tokens, self.model.n_vocab))
            for q, i in enumerate(group):
                targets = chunks.targets(i)
                for r in range(lo, hi, ROWS):  # a few rows at a time: no copies of a whole chunk's logits
                    rows = logits[q * width + r - start:q * width + min(r + ROWS, hi) - start]
                    nll[q].append(chunk_scores(log_softmax(rows), targets[r - first:min(r + ROWS, hi) - first]))
        return [np.concatenate(parts) for parts in nll]
