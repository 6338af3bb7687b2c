"""What the runtime takes, as plain values: how to load the model, how to sample, when to stop.

`run` and `run --interactive` carry all three; `bench` opens its models with LoadParams alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per run


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class LoadParams:
    """Everything needed to open a model and a context on it."""

    path: Path
    n_ctx: int = 4096  # 0 = the model's training context
    n_threads: int = field(default_factory=default_threads)
    n_batch: int = 512
    n_gpu_layers: int = 0  # -1 = all
    use_mmap: bool = True
    use_mlock: bool = False
    lora: Path | None = None
    lora_scale: float = 1.0
    warmup: bool = False  # decode a few tokens at load, as llama.cpp's own CLI does (see model.load)
    # run the sampler chain inside llama.cpp's graph (llama.cpp: experimental); None = where it pays off
    # (sampler.in_graph decides)
    backend_sampling: bool | None = None


@dataclass
class SamplingParams:
    """llama.cpp's sampler chain settings; neutral values leave a sampler out of the chain."""

    temp: float = 0.8  # 0 = greedy
    top_k: int = 40  # 0 = off
    top_p: float = 0.95  # 1 = off
    min_p: float = 0.05  # 0 = off
    typical: float = 1.0  # 1 = off
    mirostat: int = 0  # 0 off, 1 or 2
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    repeat_penalty: float = 1.0  # 1 = off
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = DEFAULT_SEED
    grammar: str | None = None  # GBNF text (root rule "root")

    def check(self) -> SamplingParams:
        if self.temp < 0:
            raise BadInputError(f"temp must be >= 0, not {self.temp}")
        if self.top_k < 0:
            raise BadInputError(f"top_k must be >= 0, not {self.top_k}")
        for name in ("top_p", "min_p", "typical"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise BadInputError(f"{name} must be between 0 and 1, not {v}")
        if self.mirostat not in (0, 1, 2):
            raise BadInputError(f"mirostat must be 0, 1 or 2, not {self.mirostat}")
        if self.repeat_penalty <= 0:
            raise BadInputError(f"repeat_penalty must be > 0, not {self.repeat_penalty}")
        if self.repeat_last_n < -1:
            raise BadInputError(f"repeat_last_n must be >= -1, not {self.repeat_last_n}")
        if not 0 <= self.seed <= 0xFFFFFFFF:
            raise BadInputError(f"seed must be between 0 and {0xFFFFFFFF}, not {self.seed}")
        return self

    def with_value(self, name: str, text: str) -> SamplingParams:
        """A copy with one setting parsed from text (for `/set PARAM VALUE`)."""
        name = name.replace("-", "_")
        kinds = {f.name: f.type for f in fields(self) if f.name != "grammar"}
        if name not in kinds:
            raise BadInputError(f"unknown sampling parameter {name!r} (one of: {', '.join(kinds)})")
        try:
            value: Any = int(text, 0) if kinds[name] == "int" else float(text)
        except ValueError:
            raise BadInputError(f"{name}: {text!r} is not a {kinds[name]}") from None
        return SamplingParams(**{**self.to_dict(), name: value}).check()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SAMPLING_KEYS = tuple(f.name for f in fields(SamplingParams) if f.name != "grammar")


@dataclass
class StopParams:
    max_tokens: int = -1  # -1 = until end of text or a full context
    stop: tuple[str, ...] = ()
