"""What the runtime takes, as plain values: how to load the model, how to sample, when to stop.

`run` and `run --interactive` carry all three; `bench` opens its models with LoadParams alone. Their
defaults are RunSettings' (runtime/settings.py), never written twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.fsutil import read_text
from ggufkit.runtime.settings import RunSettings, default_threads, parse_gpu_layers

D = RunSettings  # the defaults

MAX_GRAMMAR_BYTES = 1 << 20


@dataclass
class LoadParams:
    """Everything needed to open a model and a context on it."""

    path: Path
    n_ctx: int = D.ctx  # 0 = the model's training context
    n_threads: int = field(default_factory=default_threads)
    n_batch: int = D.batch
    n_ubatch: int = 0  # 0: n_batch (one micro-batch per batch)
    n_seq_max: int = 1  # sequences decoded side by side in one batch (imatrix: several chunks, as llama-imatrix)
    n_gpu_layers: int = parse_gpu_layers(D.gpu_layers)  # -1 = all
    use_mmap: bool = D.mmap
    use_mlock: bool = D.mlock
    lora: Path | None = D.lora
    lora_scale: float = D.lora_scale
    warmup: bool = D.warmup  # decode a few tokens at load, as llama.cpp's own CLI does (see model.load)
    # run the sampler chain inside llama.cpp's graph (llama.cpp: experimental); None = where it pays off
    # (sampler.in_graph decides)
    backend_sampling: bool | None = D.backend_sampling
    rpc: tuple[str, ...] = D.rpc  # llama.cpp rpc-servers, HOST:PORT (runtime/rpc.py)
    tensor_split: tuple[float, ...] = ()  # one proportion per offload device; () = by free memory
    # llama.cpp's graph-evaluation callback (a ggml_backend_sched_eval_callback; imatrix/collect.py), or None
    eval_callback: Any = None

    @classmethod
    def from_settings(cls, s: RunSettings, path: Path) -> LoadParams:
        return cls(path=path, n_ctx=s.ctx, n_threads=s.n_threads, n_batch=s.batch, n_gpu_layers=s.n_gpu_layers,
                   use_mmap=s.mmap, use_mlock=s.mlock, lora=s.lora, lora_scale=s.lora_scale, warmup=s.warmup,
                   backend_sampling=s.backend_sampling, rpc=tuple(s.rpc),
                   tensor_split=_tensor_split(s.tensor_split))


def _tensor_split(text: str | None) -> tuple[float, ...]:
    from ggufkit.runtime.rpc import parse_tensor_split

    return parse_tensor_split(text)


@dataclass
class SamplingParams:
    """llama.cpp's sampler chain settings; neutral values leave a sampler out of the chain."""

    temp: float = D.temp
    top_k: int = D.top_k
    top_p: float = D.top_p
    min_p: float = D.min_p
    typical: float = D.typical
    mirostat: int = D.mirostat
    mirostat_tau: float = D.mirostat_tau
    mirostat_eta: float = D.mirostat_eta
    repeat_penalty: float = D.repeat_penalty
    repeat_last_n: int = D.repeat_last_n
    presence_penalty: float = D.presence_penalty
    frequency_penalty: float = D.frequency_penalty
    seed: int = D.seed
    grammar: str | None = None  # GBNF text (root rule "root")

    @classmethod
    def from_settings(cls, s: RunSettings) -> SamplingParams:
        """The sampling settings of `s`, its grammar file read; checked."""
        sp = cls(**{k: getattr(s, k) for k in SAMPLING_KEYS})
        if s.grammar_file is not None:
            sp.grammar = read_text(s.grammar_file, "grammar", MAX_GRAMMAR_BYTES)
        return sp.check()

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
    """When generation stops (besides an end-of-text token and a full context)."""

    max_tokens: int = D.max_tokens  # -1 = until end of text or a full context
    stop: tuple[str, ...] = D.stop

    @classmethod
    def from_settings(cls, s: RunSettings) -> StopParams:
        return cls(max_tokens=s.max_tokens, stop=tuple(s.stop))


@dataclass
class RunParams:
    """A run's settings as the runtime takes them."""

    load: LoadParams
    sampling: SamplingParams
    stop: StopParams

    @classmethod
    def from_settings(cls, s: RunSettings, model_path: Path) -> RunParams:
        """Checked, the grammar file read; raises BadInputError."""
        s.check()
        return cls(LoadParams.from_settings(s, model_path), SamplingParams.from_settings(s), StopParams.from_settings(s))
