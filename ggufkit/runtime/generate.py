"""Generation as a stream of small typed events, driven through llama.cpp's C API.

The prompt is decoded in batches of n_batch tokens; then each step is one native sample + one
single-token decode into a batch built once. Python per token: a piece lookup, an incremental UTF-8
decode and (only with stop strings) a suffix check. One-shot runs and chat sessions consume this; bench
does not (bench/measure.py times llama.cpp's decode alone, as llama-bench does).
"""

from __future__ import annotations

import codecs
import ctypes
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

    ctx, chain, vocab = model.ctx, sampler.chain, model.vocab
    t0 = time.perf_counter()
    n_batch = max(1, model.params.n_batch)
    for start in range(n_reuse, len(prompt), n_batch):
        chunk = prompt[start:start + n_batch]
        arr = (L.llama_token * len(chunk))(*chunk)
        _check_decode(model, L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk))))
    L.llama_synchronize(ctx)  # decoding is asynchronous on a GPU: the prompt's time must not land on generation
    t1 = time.perf_counter()
    kv = list(prompt)

    # The hot loop: locals only, one batch reused for every step.
    sample, decode, is_eog, to_piece = L.llama_sampler_sample, L.llama_decode, L.llama_vocab_is_eog, L.llama_token_to_piece
    one = (L.llama_token * 1)()
    batch = L.llama_batch_get_one(one, 1)
    buf = ctypes.create_string_buffer(256)
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    stops = StopFilter(stop.stop)
    filtering = bool(stops.stops)
    max_tokens = stop.max_tokens if stop.max_tokens >= 0 else 1 << 62
    room = model.n_ctx - len(prompt)
    generated: list[int] = []
    shown: list[str] = []
    reason: StopReason | None = StopReason.LENGTH if max_tokens == 0 else None
    n_decoded = 0
    while reason is None:
        if cancel is not None and cancel.is_set():
            reason = StopReason.INTERRUPTED
            break
        tok = sample(chain, ctx, -1)
        if is_eog(vocab, tok):
            reason = StopReason.EOS
            break
        generated.append(tok)
        n = to_piece(vocab, tok, buf, 256, 0, False)
        text = utf8.decode(buf.raw[:n] if n >= 0 else model.piece(tok))
        if filtering:
            text, hit = stops.feed(text)
            if hit:
                reason = StopReason.STRING
        if text:
            shown.append(text)
        yield TokenEvent(tok, text)
        if reason is not None:
            break
        if len(generated) >= max_tokens:
            reason = StopReason.LENGTH
            break
        if len(generated) >= room:
            reason = StopReason.CONTEXT
            break
        one[0] = tok
        _check_decode(model, decode(ctx, batch))
        kv.append(tok)
        n_decoded += 1
    t2 = time.perf_counter()

    tail = utf8.decode(b"", True)
    if reason is not StopReason.STRING:
        tail = (stops.feed(tail)[0] if filtering else tail) + stops.flush()
    if tail:
        shown.append(tail)
        yield TokenEvent(-1, tail)
    yield DoneEvent(
        text="".join(shown), stop_reason=reason, n_prompt=len(prompt), n_prompt_eval=len(prompt) - n_reuse,
        n_generated=len(generated), prompt_ms=(t1 - t0) * 1000, gen_ms=(t2 - t1) * 1000, n_decoded=n_decoded,
        tokens=generated, kv_tokens=kv,
    )


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
