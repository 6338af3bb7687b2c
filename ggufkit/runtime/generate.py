"""Generation as a stream of small typed events, driven through llama.cpp's C API.

The prompt is decoded in batches of n_batch tokens; then each step is one pick (sampler.picker: llama.cpp's
chain, or a greedy chain's argmax over llama.cpp's logit row) + one single-token decode into a batch built
once. Python per token: a dict lookup for the token's bytes, an incremental UTF-8 decode, (only with stop
strings) an incremental stop check and the event: 4-8 us a token on a 2-core Xeon, 20 us with Gemma 3's
262k-logit argmax (docs/run-notes.md, benchmarks/run_cost.py).
One-shot runs and chat sessions consume this; bench does not (bench/measure.py times llama.cpp's decode
alone, as llama-bench does).
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ggufkit.choices import Choice
from ggufkit.errors import BadInputError, LlamaFailure
from ggufkit.runtime.model import Model
from ggufkit.runtime.params import StopParams
from ggufkit.runtime.sampler import Sampler
from ggufkit.runtime.stops import StopFilter


class StopReason(Choice):
    EOS = "eos"  # the model ended its text (an end-of-generation token)
    STRING = "stop"  # a --stop string appeared
    LENGTH = "length"  # --max-tokens reached
    CONTEXT = "context"  # the context is full
    INTERRUPTED = "interrupted"  # the caller's cancel event was set (Ctrl-C in a chat)


@dataclass(slots=True)
class TokenEvent:
    id: int
    text: str  # text that may be shown now ("" while it could still be a stop string or half a character)


@dataclass
class DoneEvent:
    text: str  # everything shown, stop string excluded
    stop_reason: StopReason
    n_prompt: int  # prompt tokens, including those reused from the KV cache
    n_prompt_eval: int  # prompt tokens actually evaluated this time
    n_generated: int
    prompt_ms: float
    gen_ms: float  # the generation loop: every token sampled, all but a last one that ended it decoded
    n_decoded: int = 0  # tokens decoded in gen_ms (n_generated, or one fewer: the last is never decoded)
    tokens: list[int] = field(default_factory=list)  # generated token ids
    prompt_done: bool = True  # False: interrupted while the prompt was evaluated (nothing of it kept)
    kv_tokens: list[int] = field(default_factory=list)  # what the KV cache holds now, in order

    @property
    def prompt_tps(self) -> float:
        return self.n_prompt_eval * 1000 / self.prompt_ms if self.prompt_ms > 0 else 0.0

    @property
    def gen_tps(self) -> float:
        """Decoded tokens per second of the loop, as llama-bench's tg counts the tokens it decodes: counting
        the last sampled token too (never decoded) read 1/n too fast."""
        return self.n_decoded * 1000 / self.gen_ms if self.gen_ms > 0 else 0.0


Event = TokenEvent | DoneEvent


def stream(model: Model, sampler: Sampler, prompt: list[int], stop: StopParams | None = None,
           n_reuse: int = 0, cancel: threading.Event | None = None) -> Iterator[Event]:
    """Generate after `prompt`. The first `n_reuse` prompt tokens are already in the KV cache.

    Yields TokenEvents, then one DoneEvent. Raises BadInputError if the prompt does not fit the context.
    `cancel` set (Ctrl-C) ends the generation at the next token, or the prompt's evaluation within one
    operation of llama.cpp's graph: the DoneEvent then says INTERRUPTED and holds what was generated.
    """
    import llama_cpp as L

    stop = stop or StopParams()
    if not prompt:
        raise BadInputError("the prompt is empty")
    if len(prompt) >= model.n_ctx:
        raise BadInputError(
            f"the prompt is {len(prompt)} tokens but the context holds {model.n_ctx} (use a larger --ctx)",
            model.params.path)
    n_reuse = max(0, min(n_reuse, len(prompt) - 1))  # at least one token decoded, for fresh logits
    model.clear_memory(n_reuse)
    _prime_sampler(sampler, prompt)

    ctx = model.ctx
    t0 = time.perf_counter()
    prompt_done = _decode_prompt(model, prompt, n_reuse, cancel)
    t1 = time.perf_counter()
    kv = list(prompt) if prompt_done else prompt[:n_reuse]

    # The hot loop: locals only, one batch reused for every step, each token's bytes looked up once per model.
    pick, decode, is_eog, vocab = sampler.picker(model), L.llama_decode, L.llama_vocab_is_eog, model.vocab
    one = (L.llama_token * 1)()
    batch = L.llama_batch_get_one(one, 1)
    pieces = model.pieces
    piece = model.piece
    utf8 = codecs.getincrementaldecoder("utf-8")("replace").decode
    stops = StopFilter(stop.stop)
    feed = stops.feed if stops.stops else None
    max_tokens = stop.max_tokens if stop.max_tokens >= 0 else 1 << 62
    limit = min(max_tokens, model.n_ctx - len(prompt))  # tokens this generation may produce
    generated: list[int] = []
    shown: list[str] = []
    reason: StopReason | None = (StopReason.INTERRUPTED if not prompt_done else
                                 StopReason.LENGTH if max_tokens == 0 else None)
    is_set = cancel.is_set if cancel is not None else bool
    n_decoded = 0
    while reason is None:
        if is_set():
            reason = StopReason.INTERRUPTED
            break
        tok = pick()
        if is_eog(vocab, tok):
            reason = StopReason.EOS
            break
        generated.append(tok)
        raw = pieces.get(tok)
        if raw is None:
            raw = pieces[tok] = piece(tok)
        text = utf8(raw)
        if feed is not None:
            text, hit = feed(text)
            if hit:
                reason = StopReason.STRING
        if text:
            shown.append(text)
        yield TokenEvent(tok, text)
        if reason is not None:
            break
        if len(generated) >= limit:
            reason = StopReason.LENGTH if len(generated) >= max_tokens else StopReason.CONTEXT
            break
        one[0] = tok
        rc = decode(ctx, batch)
        if rc:
            _check_decode(model, rc)
        kv.append(tok)
        n_decoded += 1
    t2 = time.perf_counter()

    tail = utf8(b"", True)
    if reason is not StopReason.STRING:
        tail = (feed(tail)[0] if feed is not None else tail) + stops.flush()
    if tail:
        shown.append(tail)
        yield TokenEvent(-1, tail)
    yield DoneEvent(
        text="".join(shown), stop_reason=reason, n_prompt=len(prompt), n_prompt_eval=len(prompt) - n_reuse,
        n_generated=len(generated), prompt_ms=(t1 - t0) * 1000, gen_ms=(t2 - t1) * 1000, n_decoded=n_decoded,
        tokens=generated, kv_tokens=kv, prompt_done=prompt_done,
    )


def _decode_prompt(model: Model, prompt: list[int], start: int, cancel: threading.Event | None) -> bool:
    """Evaluate prompt[start:] in batches of n_batch. False if `cancel` stopped it: the KV cache then holds
    prompt[:start] again. While a batch computes, llama.cpp asks an abort callback between the operations
    of its graph; a Python callback costs ~1 us a call, so it is set for the prompt only (one token's
    decode is short: the loop checks `cancel` between tokens)."""
    import llama_cpp as L

    ctx = model.ctx
    n_batch = max(1, model.params.n_batch)
    aborted = False
    callback = None
    if cancel is not None:
        def stop_now(_data: object) -> bool:
            try:
                return cancel.is_set()
            except BaseException:  # a KeyboardInterrupt raised here would only be printed by ctypes: stop instead
                return True

        callback = L.ggml_abort_callback(stop_now)
        L.llama_set_abort_callback(ctx, callback, None)
    try:
        for begin in range(start, len(prompt), n_batch):
            if cancel is not None and cancel.is_set():
                aborted = True
                break
            chunk = prompt[begin:begin + n_batch]
            arr = (L.llama_token * len(chunk))(*chunk)
            rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk)))
            if rc == 2 and cancel is not None and cancel.is_set():
                aborted = True
                break
            _check_decode(model, rc)
        L.llama_synchronize(ctx)  # decoding is asynchronous on a GPU: the prompt's time must not land on generation
    finally:
        if callback is not None:
            L.llama_set_abort_callback(ctx, L.ggml_abort_callback(), None)
    if aborted:
        model.clear_memory(start)
    return not aborted


def _prime_sampler(sampler: Sampler, prompt: list[int]) -> None:
    """Fresh chain state per generation; the penalties also see the end of the prompt."""
    sampler.reset()
    for tok in prompt[len(prompt) - sampler.history_n:] if sampler.history_n else ():
        sampler.accept(tok)


def _check_decode(model: Model, rc: int) -> None:
    if rc == 0:
        return
    if rc == 1:
        raise LlamaFailure("llama.cpp found no room in the KV cache (context full)", model.params.path)
    raise LlamaFailure(f"llama.cpp could not evaluate the tokens (llama_decode returned {rc})", model.params.path)
