"""llama.cpp's own sampler chain, built from SamplingParams (never a Python reimplementation).

The order is llama.cpp's common order: grammar, penalties, top-k, typical, top-p, min-p, temperature,
then the final pick (dist with the seed, greedy at temp 0, or mirostat). Samplers at their neutral value
are left out, so a chain costs only what it uses. With LoadParams.backend_sampling the chain is attached
to the context (llama_set_sampler): llama.cpp then runs the samplers that support it inside the model's
graph, on the GPU when the output layer is there, and copies back a token instead of the whole logit row.

One shortcut, for the greedy chain alone on the CPU (`--temp 0`, no penalties, no grammar): its pick is by
definition the first maximum of the logit row (llama_sampler_greedy_apply), so `picker` takes numpy's SIMD
argmax over llama.cpp's own logits buffer instead of llama_sampler_sample, which first copies all n_vocab
logits into a candidate array and then scans it one by one: 0.34 ms a token for Gemma 3's 262k vocabulary,
as much as 5 % of a decode there (docs/run-notes.md). The chain still accepts each token.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.runtime import llama_log, native
from ggufkit.runtime.params import SamplingParams

MIROSTAT_M = 100  # llama.cpp's fixed window for mirostat v1


@dataclass
class Sampler:
    chain: object  # llama_sampler_p
    names: list[str]  # what the chain holds, in order (for /show and --verbose)
    history_n: int = 0  # prompt tokens to show the penalties before generating (0 with a grammar)
    attached_to: object = None  # the llama_context the chain runs inside (backend sampling), if any
    greedy_only: bool = False  # the chain is llama.cpp's greedy sampler alone, on the CPU

    @property
    def description(self) -> str:
        where = " (in llama.cpp's graph)" if self.attached_to else ""
        return " -> ".join(self.names) + where

    def reset(self) -> None:
        import llama_cpp

        llama_cpp.llama_sampler_reset(self.chain)

    def accept(self, token: int) -> None:
        """Tell the chain about a token it did not pick (prompt history for the penalties)."""
        import llama_cpp

        llama_cpp.llama_sampler_accept(self.chain, token)

    def picker(self, model) -> Callable[[], int]:
        """The per-token pick for `model`'s context: a function of no arguments returning the token."""
        import functools

        import llama_cpp

        sample = functools.partial(llama_cpp.llama_sampler_sample, self.chain, model.ctx, -1)
        if not self.greedy_only:
            return sample
        return _argmax_picker(model, self.chain, sample)

    def close(self) -> None:
        if self.chain:
            import llama_cpp

            if self.attached_to:  # the context must not keep a pointer to a freed chain
                llama_cpp.llama_set_sampler(self.attached_to, 0, None)
                self.attached_to = None
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _argmax_picker(model, chain: object, sample: Callable[[], int]) -> Callable[[], int]:
    """Greedy's pick without its candidate array: the first maximum of the last logit row, as
    llama_sampler_greedy_apply picks it, found by numpy on llama.cpp's buffer in place (no copy)."""
    import llama_cpp
    import numpy as np

    # a private function pointer (native.symbol): llama-cpp-python's own binding returns a POINTER object
    # (its address costs another call to read); this one returns the address as an int
    logits_at = native.symbol("llama_get_logits_ith", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
    if logits_at is None:
        return sample
    accept, ctx, row_type = llama_cpp.llama_sampler_accept, model.ctx, ctypes.c_float * model.n_vocab
    view: list = [None, None]  # the buffer's address and a numpy view of it: built again only if it moves

    def pick() -> int:
        addr = logits_at(ctx, -1)
        if addr != view[0]:
            if not addr:  # no logits (llama.cpp logged why): its own sampler reports it
                return sample()
            view[0], view[1] = addr, np.frombuffer(row_type.from_address(addr), dtype=np.float32)
        row = view[1]
        tok = int(row.argmax())
        if row[tok] != row[tok]:  # a NaN logit: numpy picks the first NaN, llama.cpp's greedy skips them
            return sample()
        accept(chain, tok)
        return tok

    return pick


def in_graph(setting: bool | None, sp: SamplingParams, all_on_gpu: bool) -> bool:
    """Whether the chain runs inside llama.cpp's graph. Unset, only a plain greedy chain on a model wholly
    on a GPU does: on an H100 that was 3-9 % faster (no logit row copied back, no CPU pass over it),
    while GPU top-k/top-p chains were slower than the CPU's, and the CPU backend gains nothing."""
    if setting is not None:
        return setting
    plain = sp.repeat_penalty == 1.0 and not sp.presence_penalty and not sp.frequency_penalty
    return all_on_gpu and sp.temp <= 0 and sp.grammar is None and plain


def build_sampler(model, sp: SamplingParams, grammar_file: Path | None = None) -> Sampler:
    """A native chain for `model` (runtime.model.Model). Raises BadInputError for a bad grammar, about
    `grammar_file` when the grammar came from one."""
    try:
        return _build(model, sp)
    except BadInputError as e:
        if grammar_file is not None and e.path is None:
            raise BadInputError(e.message, grammar_file) from None
        raise


def _build(model, sp: SamplingParams) -> Sampler:
    import llama_cpp as L

    sp.check()
    backend = in_graph(model.params.backend_sampling, sp, model.all_on_gpu)
    if backend and sp.grammar is not None:
        raise BadInputError("backend sampling cannot apply a grammar (llama.cpp runs grammars on the CPU only): "
                            "leave out --backend-sampling or the grammar")
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    names: list[str] = []
    history_n = 0

    def add(name: str, smpl: object) -> None:
        L.llama_sampler_chain_add(chain, smpl)
        names.append(name)

    try:
        if sp.grammar is not None:
            with llama_log.capture() as log, llama_log.stderr_text() as raw:
                g = L.llama_sampler_init_grammar(model.vocab, sp.grammar.encode(), b"root")
            if not g:
                first = next((ln.strip() for ln in raw[0].splitlines() if ln.strip()), "")
                why = f": {first.removeprefix('parse: ')}" if first else log.reason()
                raise BadInputError(f"the grammar does not parse{why}")
            add("grammar", g)
        if sp.repeat_penalty != 1.0 or sp.presence_penalty or sp.frequency_penalty:
            last_n = model.n_ctx if sp.repeat_last_n == -1 else sp.repeat_last_n
            history_n = 0 if sp.grammar is not None else last_n  # a grammar must not see the prompt
            add(f"penalties(last_n={last_n}, repeat={sp.repeat_penalty}, freq={sp.frequency_penalty}, "
                f"present={sp.presence_penalty})",
                L.llama_sampler_init_penalties(model.n_vocab, last_n, sp.repeat_penalty, sp.frequency_penalty, sp.presence_penalty))
        if sp.temp <= 0:
            add("greedy", L.llama_sampler_init_greedy())
        elif sp.mirostat == 1:
            add(f"temp({sp.temp})", L.llama_sampler_init_temp(sp.temp))
            add(f"mirostat(tau={sp.mirostat_tau}, eta={sp.mirostat_eta})",
                L.llama_sampler_init_mirostat(model.n_vocab, sp.seed, sp.mirostat_tau, sp.mirostat_eta, MIROSTAT_M))
        elif sp.mirostat == 2:
            add(f"temp({sp.temp})", L.llama_sampler_init_temp(sp.temp))
            add(f"mirostat_v2(tau={sp.mirostat_tau}, eta={sp.mirostat_eta})",
                L.llama_sampler_init_mirostat_v2(sp.seed, sp.mirostat_tau, sp.mirostat_eta))
        else:
            if sp.top_k > 0:
                add(f"top_k({sp.top_k})", L.llama_sampler_init_top_k(sp.top_k))
            if sp.typical < 1.0:
                add(f"typical({sp.typical})", L.llama_sampler_init_typical(sp.typical, 1))
            if sp.top_p < 1.0:
                add(f"top_p({sp.top_p})", L.llama_sampler_init_top_p(sp.top_p, 1))
            if sp.min_p > 0.0:
                add(f"min_p({sp.min_p})", L.llama_sampler_init_min_p(sp.min_p, 1))
            add(f"temp({sp.temp})", L.llama_sampler_init_temp(sp.temp))
            add(f"dist(seed={sp.seed})", L.llama_sampler_init_dist(sp.seed))
        attached = None
        if backend:
            with llama_log.capture() as log:
                ok = L.llama_set_sampler(model.ctx, 0, chain)
            if not ok:
                raise BadInputError(f"llama.cpp cannot run this sampler chain in its graph{log.reason()}")
            attached = model.ctx
    except BaseException:
        L.llama_sampler_free(chain)
        raise
    return Sampler(chain, names, history_n, attached, greedy_only=names == ["greedy"] and attached is None)
