"""Presets: named bundles of run settings (sampling, template, system prompt, context, threads, GPU layers).

A preset is a flat TOML table using the flag names with underscores (`temp = 0.7`, `top_k = 40`,
`template = "chatml"`, `system = "..."`, `ctx = 4096`, `gpu_layers = "all"`). Flags given on the
command line override it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.runtime.params import SAMPLING_KEYS, SamplingParams

MAX_PRESET_BYTES = 1 << 20

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "precise": {"temp": 0.2, "top_k": 20, "top_p": 0.8, "min_p": 0.05, "repeat_penalty": 1.1},
    "balanced": {"temp": 0.7, "top_k": 40, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.1},
    "creative": {"temp": 1.0, "top_k": 100, "top_p": 0.98, "min_p": 0.02, "repeat_penalty": 1.05},
}

DESCRIPTIONS = {
    "precise": "focused, near-deterministic answers",
    "balanced": "everyday chat",
    "creative": "varied, surprising text",
}

# setting -> accepted Python types (besides the sampling ones, typed from SamplingParams)
_OTHER_KEYS: dict[str, tuple[type, ...]] = {
    "template": (str,), "template_file": (str,), "system": (str,), "ctx": (int,), "threads": (int,),
    "batch": (int,), "gpu_layers": (int, str), "max_tokens": (int,), "stop": (list,), "mmap": (bool,),
    "mlock": (bool,), "lora": (str,), "lora_scale": (float, int), "grammar_file": (str,), "chat": (bool,),
    "warmup": (bool,), "backend_sampling": (bool,),
}


def _sampling_types() -> dict[str, tuple[type, ...]]:
    defaults = SamplingParams()
    return {k: (float, int) if isinstance(getattr(defaults, k), float) else (int,) for k in SAMPLING_KEYS}


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A built-in preset by name, or a TOML file; values are checked for name and type."""
    path = Path(name_or_path)
    if name_or_path in BUILTIN_PRESETS and not path.exists():
        return dict(BUILTIN_PRESETS[name_or_path])
    try:
        data = path.read_bytes()[: MAX_PRESET_BYTES + 1]
    except OSError as e:
        hint = f" (built-in presets: {', '.join(BUILTIN_PRESETS)})" if not path.exists() else ""
        raise BadInputError(f"cannot read preset: {e.strerror}{hint}", path) from None
    if len(data) > MAX_PRESET_BYTES:
        raise BadInputError("preset file is larger than 1 MiB", path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInputError(f"preset is not valid TOML: {e}", path) from None
    return check_preset(doc, path)


def check_preset(doc: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    types = {**_sampling_types(), **_OTHER_KEYS}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        norm = key.replace("-", "_")
        if norm not in types:
            raise BadInputError(f"unknown preset setting {key!r} (known: {', '.join(types)})", path)
        ok = types[norm]
        if isinstance(value, bool) and bool not in ok or not isinstance(value, ok):
            raise BadInputError(f"preset setting {key!r} should be {' or '.join(t.__name__ for t in ok)}, "
                                f"not {type(value).__name__}", path)
        if norm == "stop" and not all(isinstance(s, str) for s in value):
            raise BadInputError("preset setting 'stop' should be a list of strings", path)
        out[norm] = float(value) if ok == (float, int) else value
    return out
