"""Perplexity of every model on a text and, against the first (the base), KL-divergence, Δp and top-token
agreement — llama-perplexity's figures, for any number of models in one pass.

How llama-perplexity computes them (tools/perplexity/perplexity.cpp), and so how this does: the text is
tokenized once (with BOS when the model adds one) and cut into chunks of n_ctx tokens; each chunk is
decoded from an empty cache with its first token replaced by BOS (when the model adds one); only the
second half of each chunk is scored, logits at position i predicting token i+1.

Memory: llama-perplexity's KL mode runs the base first and writes every scored token's log-probabilities
to a file (gigabytes for a large vocabulary), then runs each model against that file. Here every model
is open at once and the text is walked chunk by chunk: every model decodes the chunk into its own
context's logits buffer — in one batch, as llama-perplexity does, or, for a large vocabulary, the first
half and then the scored half in pieces (logits.LOGITS_BUDGET: 128 positions at 262k tokens) — and the
models are compared with the base 32 rows at a time (compare.py): per scored token only four numbers
are kept (see stats.py).

Speed: the comparison is numpy work on the CPU, in worker threads (numpy lets go of the GIL). On the
CPU it follows each decode (the decode had every core); when every model runs wholly on a GPU it
overlaps the next decodes, on copies of the logits held within LOGITS_BUDGET.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.evaluate.compare import Comparer
from ggufkit.evaluate.logits import ChunkRunner
from ggufkit.evaluate.stats import Tally
from ggufkit.evaluate.text import TextChunks, check_ctx, cut_while_loading
from ggufkit.runtime.params import LoadParams


@dataclass
class ModelResult:
    path: str
    file_size: int
    parameters: int
    bits_per_weight: float
    tokens_per_second: float = 0.0
    ppl: float = float("nan")
    ppl_err: float = float("nan")
    vs_base: dict[str, Any] | None = None  # None for the base


@dataclass
class EvalResult:
    text: str  # where the text came from
    tokens: int  # tokens of the whole text
    ctx: int
    chunks: int  # chunks scored
    chunks_total: int
    add_bos: bool
    partial: bool  # interrupted: the figures cover the chunks scored so far
    models: list[ModelResult] = field(default_factory=list)


@dataclass
class _Open:
    result: ModelResult
    runner: ChunkRunner
    tally: Tally = field(default_factory=Tally)


def evaluate(paths: list[Path], text: str, text_name: str, ctx: int = 512, chunks: int | None = None,
             load: LoadParams | None = None, on_notice: Callable[[str], None] | None = None,
             on_chunk: Callable[[int, int], None] | None = None) -> EvalResult:
    """`paths[0]` is the base. Ctrl-C (KeyboardInterrupt) between chunks returns the figures so far, partial."""
    from ggufkit.runtime.model import load as load_model
    from ggufkit.runtime.prepare import prepare_model

    check_ctx(ctx)
    prepared = [prepare_model(p, on_notice) for p in paths]
    _check_vocabularies(prepared)
    trained = prepared[0].gguf.arch_kv(Keys.LLM.CONTEXT_LENGTH)
    if isinstance(trained, int) and 0 < trained < ctx and on_notice is not None:
        on_notice(f"warning: --ctx {ctx} is beyond the {trained} tokens {paths[0].name} was trained on: "
                  "the figures then measure how it copes past its training context")
    def open_all() -> list[_Open]:
        opened: list[_Open] = []
        try:
            for p in prepared:
                params = LoadParams(p.path, n_ctx=ctx, n_batch=ctx, warmup=False,
                                    **({} if load is None else {"n_threads": load.n_threads, "n_gpu_layers": load.n_gpu_layers,
                                                                "use_mmap": load.use_mmap}))
                model = load_model(params)
                opened.append(_Open(_describe(p), ChunkRunner(model, ctx)))
        except BaseException:
            _close(opened)
            raise
        return opened

    opened, cut = cut_while_loading(prepared[0].path, text, ctx, chunks, open_all, _close)
    try:
        return _run(opened, cut, text_name, ctx, on_chunk)
    finally:
        _close(opened)


def _close(opened: list[_Open]) -> None:
    for o in opened:
        o.runner.close()
        o.runner.model.close()


def _run(opened: list[_Open], chunks: TextChunks, text_name: str, ctx: int,
         on_chunk: Callable[[int, int], None] | None) -> EvalResult:
    base = opened[0].runner.model
    result = EvalResult(text_name, len(chunks.tokens), ctx, 0, chunks.count, chunks.add_bos, False)
    on_gpu = all(o.runner.model.all_on_gpu for o in opened)
    workers = min(8, max(1, (os.cpu_count() or 2) - 1)) if on_gpu else base.params.n_threads
    with Comparer([o.tally for o in opened], workers, overlap=on_gpu) as comparer:
        try:
            for i in range(chunks.count):
                _score_chunk(opened, chunks.chunk(i), chunks.targets(i), comparer)
                comparer.end_chunk()
                if on_chunk is not None:
                    on_chunk(i + 1, chunks.count)
        except KeyboardInterrupt:
            result.partial = True
        result.chunks = comparer.finish()
    if result.chunks == 0:
        raise KeyboardInterrupt
    for k, o in enumerate(opened):
        r = o.result
        r.tokens_per_second = o.runner.tokens / o.runner.seconds if o.runner.seconds else 0.0
        r.ppl, r.ppl_err = o.tally.perplexity()["ppl"], o.tally.perplexity()["ppl_err"]
        if k:
            r.vs_base = o.tally.against(opened[0].tally)
        result.models.append(r)
    return result


def _score_chunk(opened: list[_Open], chunk: list[int], targets: np.ndarray, comparer: Comparer) -> None:
    """Every model decodes each span of the chunk in turn (each keeps its logits in its own context; one
    finishes before the next starts, so each one's time is its own), and the scored rows go to `comparer`."""
    runner = opened[0].runner
    first, n = runner.first, len(targets)  # positions first .. n_ctx-2 predict targets; the last predicts nothing
    for start, end in runner.spans():
        logits = []
        for o in opened:
            o.runner.launch(chunk, start, end)
            logits.append(o.runner.finish())
        lo, hi = max(start, first) - first, min(end - first, n)
        if logits[0] is not None and hi > lo:
            comparer.add([x[:hi - lo] for x in logits], targets[lo:hi])


def _check_vocabularies(prepared: list) -> None:
    base = prepared[0].gguf.kv.get(Keys.Tokenizer.LIST)
    for p in prepared[1:]:
        tokens = p.gguf.kv.get(Keys.Tokenizer.LIST)
        if tokens != base:
            n, m = len(tokens or []), len(base or [])
            why = f"{n} tokens, the base has {m}" if n != m else f"token {next(i for i, (a, b) in enumerate(zip(tokens, base)) if a != b)} differs"
            raise BadInputError(f"its vocabulary is not the base model's ({why}): KL-divergence compares "
                                f"distributions over the same tokens", p.source)


def _describe(p) -> ModelResult:
    weights = sum(t.nbytes for t in p.gguf.tensors)
    params = sum(t.n_elements for t in p.gguf.tensors)
    size = p.gguf.file_size if p.path == p.source else os.path.getsize(p.source)  # a split model: every shard
    return ModelResult(str(p.source), size, params, weights * 8 / params if params else 0.0)
