"""Perplexity of every model on a text and, against the first (the base), KL-divergence, Δp and top-token
agreement — llama-perplexity's figures, for any number of models in one pass.

How llama-perplexity computes them (tools/perplexity/perplexity.cpp), and so how this does: the text is
tokenized once (with BOS when the model adds one) and cut into chunks of n_ctx tokens; each chunk is
decoded from an empty cache with its first token replaced by BOS (when the model adds one); only the
second half of each chunk is scored, logits at position i predicting token i+1.

Memory: llama-perplexity's KL mode runs the base first and writes every scored token's log-probabilities
to a file (gigabytes for a large vocabulary), then runs each model against that file. Here every model
is open at once and the text is walked chunk by chunk: every model decodes the first half of a chunk,
then the scored half into its own context's logits buffer, in pieces small enough for a large
vocabulary (logits.LOGITS_BUDGET: 128 positions at 262k tokens), and the models are compared with
the base 32 rows at a time: our own largest arrays are 32 x n_vocab, and per scored token only four
numbers are kept (see stats.py).
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
from ggufkit.evaluate.logits import ChunkRunner, log_softmax
from ggufkit.evaluate.stats import Tally, chunk_scores, compare_rows
from ggufkit.runtime.params import LoadParams

ROWS = 32  # rows of log-probabilities compared at a time


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

    if ctx < 16 or ctx % 2:
        raise BadInputError(f"--ctx must be an even number of at least 16 tokens, not {ctx}")
    prepared = [prepare_model(p, on_notice) for p in paths]
    _check_vocabularies(prepared)
    trained = prepared[0].gguf.arch_kv(Keys.LLM.CONTEXT_LENGTH)
    if isinstance(trained, int) and 0 < trained < ctx and on_notice is not None:
        on_notice(f"warning: --ctx {ctx} is beyond the {trained} tokens {paths[0].name} was trained on: "
                  "the figures then measure how it copes past its training context")
    opened: list[_Open] = []
    try:
        for p in prepared:
            params = LoadParams(p.path, n_ctx=ctx, n_batch=ctx, warmup=False,
                                **({} if load is None else {"n_threads": load.n_threads, "n_gpu_layers": load.n_gpu_layers,
                                                            "use_mmap": load.use_mmap}))
            model = load_model(params)
            opened.append(_Open(_describe(p), ChunkRunner(model, ctx)))
        return _run(opened, text, text_name, ctx, chunks, on_chunk)
    finally:
        for o in opened:
            o.runner.close()
            o.runner.model.close()


def _run(opened: list[_Open], text: str, text_name: str, ctx: int, max_chunks: int | None,
         on_chunk: Callable[[int, int], None] | None) -> EvalResult:
    import llama_cpp as L

    base = opened[0].runner.model
    add_bos = bool(L.llama_vocab_get_add_bos(base.vocab))
    bos = L.llama_vocab_bos(base.vocab)
    tokens = base.tokenize(text, add_special=True)
    total = len(tokens) // ctx
    if len(tokens) < 2 * ctx:
        raise BadInputError(f"the text has {len(tokens)} tokens; a context of {ctx} needs at least {2 * ctx} "
                            "(llama-perplexity's minimum): give a longer text or a smaller --ctx")
    n_chunks = total if max_chunks is None else max(1, min(total, max_chunks))
    first = ctx // 2
    result = EvalResult(text_name, len(tokens), ctx, 0, n_chunks, add_bos, False)
    try:
        for i in range(n_chunks):
            chunk = tokens[i * ctx:(i + 1) * ctx]
            targets = np.array(chunk[first + 1:], dtype=np.int64)
            if add_bos:
                chunk = [bos, *chunk[1:]]
            _score_chunk(opened, chunk, targets)
            result.chunks = i + 1
            if on_chunk is not None:
                on_chunk(i + 1, n_chunks)
    except KeyboardInterrupt:
        result.partial = True
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


def _score_chunk(opened: list[_Open], chunk: list[int], targets: np.ndarray) -> None:
    """Every model decodes the unscored first half, then each piece of the scored half in turn (each keeps
    its logits in its own context), and the pieces are compared ROWS at a time: no log-probabilities for
    a whole chunk ever exist at once."""
    runner = opened[0].runner
    for o in opened:
        o.runner.decode(chunk, 0, runner.first)
    parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in opened]
    n = len(targets)  # positions first .. n_ctx-2 predict targets; the last position predicts nothing
    for start, end in runner.spans():
        logits = [o.runner.decode(chunk, start, end) for o in opened]
        for r in range(start - runner.first, min(end - runner.first, n), ROWS):
            s = slice(r, min(r + ROWS, end - runner.first, n))
            local = slice(s.start - (start - runner.first), s.stop - (start - runner.first))
            lp_base = log_softmax(logits[0][local])
            parts[0].append((chunk_scores(lp_base, targets[s]),))
            for k in range(1, len(opened)):
                lp = log_softmax(logits[k][local])
                parts[k].append((chunk_scores(lp, targets[s]), *compare_rows(lp_base, lp, targets[s])))
    opened[0].tally.nll.append(np.concatenate([p[0] for p in parts[0]]))
    for o, got in zip(opened[1:], parts[1:]):
        nll, kld, dp, same = (np.concatenate(x) for x in zip(*got))
        o.tally.nll.append(nll)
        o.tally.kld.append(kld.astype(np.float32))
        o.tally.dp.append(dp.astype(np.float32))
        o.tally.same_top.append(same)


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
    return ModelResult(str(p.source), os.path.getsize(p.source), params, weights * 8 / params if params else 0.0)
