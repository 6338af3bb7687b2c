"""Run a text through a model chunk by chunk, gathering the importance matrix as llama-imatrix does.

The text, its chunks, BOS and the scored half are eval's (evaluate/text.py). Every position of a chunk asks
for its logits, as llama-imatrix's batches do: llama.cpp otherwise skips the last layer's feed-forward for
rows that give no output, and that layer's counts would differ. A chunk is decoded in pieces small enough
for the vocabulary's logits (one piece of 512 for most models, as llama-imatrix's micro-batch), never
fewer than 16 tokens each (llama-imatrix leaves smaller batches out). The running perplexity of the scored
halves is llama-imatrix's too.

Ctrl-C (KeyboardInterrupt): the sums go back to where the chunk under way started, and what the whole
chunks gave is returned, marked partial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.evaluate.logits import LOGITS_BUDGET, ChunkRunner, log_softmax
from ggufkit.evaluate.stats import Tally, chunk_scores
from ggufkit.evaluate.text import check_ctx, cut_text
from ggufkit.imatrix.matrix import Matrix, check_matches

MAX_PIECE = 512  # llama-imatrix's micro-batch (common_params.n_ubatch)
MIN_PIECE = 16


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
    vocab = len(prepared.gguf.kv.get(Keys.Tokenizer.LIST) or ())
    step = piece_size(ctx, vocab)
    params = LoadParams(prepared.path, n_ctx=ctx, n_batch=step, warmup=False,
                        n_threads=threads or default_threads(), n_gpu_layers=parse_gpu_layers(gpu_layers),
                        eval_callback=collector.callback)
    model = load(params)
    runner = ChunkRunner(model, ctx)
    try:
        return _run(runner, collector, cut_text(model, text, ctx, chunks), pieces(ctx, step), on_progress)
    finally:
        runner.close()
        model.close()


def piece_size(ctx: int, n_vocab: int) -> int:
    """Tokens per decode: at most MAX_PIECE, and few enough that their logits fit eval's budget."""
    fit = max(32, LOGITS_BUDGET // (8 * max(n_vocab, 1)) // 32 * 32)
    return min(ctx, MAX_PIECE, fit)


def pieces(ctx: int, step: int) -> list[tuple[int, int]]:
    """The chunk in as few pieces of at most `step` tokens as can be, of nearly equal length (none under
    MIN_PIECE, since ctx >= 16 and step >= 32 when it is below ctx)."""
    n = -(-ctx // step)
    bounds = [ctx * k // n for k in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _run(runner: ChunkRunner, collector, chunks, spans: list[tuple[int, int]],
         on_progress: Callable[[Progress], None] | None) -> Computed:
    """One entry in tally.nll per whole chunk: Ctrl-C anywhere leaves the sums and it in step."""
    matrix, tally = collector.matrix, Tally()
    started = time.perf_counter()
    try:
        for i in range(chunks.count):
            saved, n_scored = matrix.snapshot(), len(tally.nll)
            try:
                tally.nll.append(_chunk(runner, collector, chunks, i, spans))
            except KeyboardInterrupt:
                matrix.restore(saved)
                del tally.nll[n_scored:]
                raise
            if on_progress is not None:
                on_progress(Progress(len(tally.nll), chunks.count, tally.perplexity()["ppl"], _speed(runner)))
    except KeyboardInterrupt:
        matrix.partial = True
        if not tally.nll:
            raise
    ppl = tally.perplexity()
    return Computed(matrix, len(tally.nll), chunks.count, len(chunks.tokens), ppl["ppl"], ppl["ppl_err"],
                    _speed(runner), time.perf_counter() - started, matrix.partial)


def _chunk(runner: ChunkRunner, collector, chunks, i: int, spans: list[tuple[int, int]]):
    """Decode chunk i piece by piece; return the scored half's negative log-likelihoods."""
    import numpy as np

    tokens, targets, first = chunks.chunk(i), chunks.targets(i), chunks.first
    nll = []
    for start, end in spans:
        logits = runner.decode(tokens, start, end, every=True)
        failure = collector.take_failure()
        if failure is not None:
            raise failure
        lo, hi = max(start, first), min(end, chunks.ctx - 1)  # the last position predicts nothing
        if lo < hi:
            nll.append(chunk_scores(log_softmax(logits[lo - start:hi - start]), targets[lo - first:hi - first]))
    return np.concatenate(nll)


def _speed(runner: ChunkRunner) -> float:
    return runner.tokens / runner.seconds if runner.seconds else math.nan
