"""From merged settings (defaults < preset < flags) to the three values a run carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.fsutil import read_text
from ggufkit.runtime.params import SAMPLING_KEYS, LoadParams, SamplingParams, StopParams, default_threads

MAX_GRAMMAR_BYTES = 1 << 20


@dataclass
class RunSettings:
    load: LoadParams
    sampling: SamplingParams
    stop: StopParams


def merge(preset: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags that were given (not None) override the preset."""
    out = dict(preset)
    out.update({k: v for k, v in flags.items() if v is not None and v != ()})
    return out


def parse_gpu_layers(value: int | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        n = value
    elif value.strip().lower() in ("all", "max", "-1"):
        return -1
    else:
        try:
            n = int(value)
        except ValueError:
            raise BadInputError(f"--gpu-layers takes a number or 'all', not {value!r}") from None
    if n < -1:
        raise BadInputError(f"--gpu-layers must be >= 0 or 'all', not {n}")
    return n


def build(settings: dict[str, Any], model_path: Path) -> RunSettings:
    s = settings
    for key, low in (("ctx", 0), ("threads", 1), ("batch", 1)):
        if s.get(key) is not None and s[key] < low:
            raise BadInputError(f"--{key} must be >= {low}, not {s[key]}")
    sampling = SamplingParams(**{k: s[k] for k in SAMPLING_KEYS if s.get(k) is not None})
    if s.get("grammar_file"):
        sampling.grammar = read_text(Path(s["grammar_file"]), "grammar", MAX_GRAMMAR_BYTES)
    sampling.check()
    lora = s.get("lora")
    load = LoadParams(
        path=model_path,
        n_ctx=s.get("ctx") if s.get("ctx") is not None else 4096,
        n_threads=s.get("threads") or default_threads(),
        n_batch=s.get("batch") or 512,
        n_gpu_layers=parse_gpu_layers(s.get("gpu_layers")),
        use_mmap=s.get("mmap", True),
        use_mlock=bool(s.get("mlock", False)),
        lora=Path(lora) if lora else None,
        lora_scale=float(s.get("lora_scale", 1.0)),
        warmup=bool(s.get("warmup", True)),
        backend_sampling=s.get("backend_sampling"),
    )
    max_tokens = s.get("max_tokens")
    stop = StopParams(max_tokens=-1 if max_tokens is None else max_tokens, stop=tuple(s.get("stop") or ()))
    if stop.max_tokens < -1:
        raise BadInputError(f"--max-tokens must be >= -1, not {stop.max_tokens}")
    return RunSettings(load, sampling, stop)


