"""The timed loops, as llama-bench (tools/llama-bench/llama-bench.cpp) runs them, on an open Model.

pp: random token ids (BOS first when the vocabulary adds one) decoded in batches of n_batch, output for
the last token of each batch only, then llama_synchronize. tg: n single-token decodes, each followed by
llama_synchronize. Each test gets one untimed warm-up (the whole prompt; one generated token), then
`reps` timed runs, each on an emptied KV cache. Speed of a run = tokens / seconds; figures are the mean
and sample standard deviation of those per-run speeds, exactly llama-bench's avg_ts and stdev_ts.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ggufkit.errors import LlamaFailure
from ggufkit.runtime.model import Model


@dataclass
class Speed:
    tokens: int
    samples_ns: list[int] = field(default_factory=list)

    @property
    def tps(self) -> list[float]:
        return [self.tokens * 1e9 / ns for ns in self.samples_ns]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.tps) if self.samples_ns else 0.0

    @property
    def sd(self) -> float:
        return statistics.stdev(self.tps) if len(self.samples_ns) > 1 else 0.0


class Bencher:
    def __init__(self, model: Model, seed: int = 1):
        import llama_cpp

        self.L = llama_cpp
        self.model = model
        self.rng = random.Random(seed)
        self.bos = llama_cpp.llama_vocab_bos(model.vocab) if llama_cpp.llama_vocab_get_add_bos(model.vocab) else None

    def clear(self) -> None:
        self.L.llama_memory_clear(self.model.memory, False)

    def prompt(self, n_prompt: int) -> Callable[[], None]:
        """The pp run, its random tokens drawn beforehand: at GPU speeds (a 512-token prompt in ~5 ms)
        drawing them in Python inside the timed region would cost several percent."""
        L, ctx = self.L, self.model.ctx
        n_vocab, n_batch = self.model.n_vocab, max(1, self.model.params.n_batch)
        batches = []
        done = 0
        while done < n_prompt:
            n = min(n_prompt - done, n_batch)
            tokens = [self.rng.randrange(n_vocab) for _ in range(n)]
            if done == 0 and self.bos is not None:
                tokens[0] = self.bos
            arr = (L.llama_token * n)(*tokens)
            batches.append((arr, L.llama_batch_get_one(arr, n)))
            done += n
        path = self.model.params.path

        def run() -> None:
            for _arr, batch in batches:
                rc = L.llama_decode(ctx, batch)
                if rc != 0:
                    raise LlamaFailure(f"llama_decode failed (returned {rc})", path)
            L.llama_synchronize(ctx)

        return run

    def generate(self, n_gen: int) -> Callable[[], None]:
        L, ctx, n_vocab = self.L, self.model.ctx, self.model.n_vocab
        draws = [self.rng.randrange(n_vocab) for _ in range(n_gen)]
        one = (L.llama_token * 1)(self.bos if self.bos is not None else draws[0])
        batch = L.llama_batch_get_one(one, 1)  # positions continue from the KV cache
        decode, sync, path = L.llama_decode, L.llama_synchronize, self.model.params.path

        def run() -> None:
            for token in draws:
                rc = decode(ctx, batch)
                if rc != 0:
                    raise LlamaFailure(f"llama_decode failed (returned {rc})", path)
                sync(ctx)
                one[0] = token

        return run

    def measure(self, test: Callable[[int], Callable[[], None]], n_tokens: int, reps: int,
                on_rep: Callable[[int], None] | None = None, warmup_tokens: int | None = None) -> Speed:
        """One untimed warm-up, then `reps` timed runs of `test(n_tokens)`, each on an emptied KV cache."""
        self.clear()
        test(n_tokens if warmup_tokens is None else warmup_tokens)()
        speed = Speed(n_tokens)
        for i in range(reps):
            if on_rep is not None:
                on_rep(i + 1)
            self.clear()
            run = test(n_tokens)
            t0 = time.perf_counter_ns()
            run()
            speed.samples_ns.append(time.perf_counter_ns() - t0)
        return speed
