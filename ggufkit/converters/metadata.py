"""What a legacy file lacks (context length, RMS epsilon, rope base, chat template) from flags or an HF folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.fsutil import read_text

MAX_CONFIG_BYTES = 1 << 20


@dataclass
class ConvertOptions:
    """Flags of `convert`; None means "from --metadata-dir if given, else the default"."""

    eps: float | None = None
    context_length: int | None = None
    rope_freq_base: float | None = None
    gqa: int | None = None
    name: str | None = None
    description: str | None = None
    metadata_dir: Path | None = None
    verify: bool = False
    family: str | None = None  # --arch: skip telling families apart
    requantize_to: str | None = None  # target type for blocks of removed types (Q4_2, Q4_3)
    split_max_size: int | None = None  # bytes of tensor data per shard: the output is split (surgery/split.py)


@dataclass(frozen=True)
class Resolved:
    eps: float
    context_length: int
    rope_freq_base: float | None
    n_head_kv: int | None  # from config.json, checked against the file's K projection
    sources: dict[str, str]  # setting -> "flag" | "config.json" | "file" | "default"


LLAMA_CONFIG_KEYS = {"eps": ("rms_norm_eps",), "context_length": ("max_position_embeddings",),
                     "rope_freq_base": ("rope_theta",)}


def resolve(options: ConvertOptions, defaults: dict[str, Any], config_keys: dict[str, tuple[str, ...]] | None = None,
            from_file: dict[str, Any] | None = None) -> Resolved:
    """Each setting from the flag, else config.json (under the family's `config_keys`), else what the
    file holds (`from_file`), else the family's default (`defaults`)."""
    config = _read_config(options.metadata_dir) if options.metadata_dir else {}
    keys = config_keys or LLAMA_CONFIG_KEYS
    in_file = from_file or {}
    sources: dict[str, str] = {}

    def pick(setting: str, flag: Any, default: Any) -> Any:
        if flag is not None:
            sources[setting] = "flag"
            return flag
        for key in keys.get(setting, ()):
            if config.get(key) is not None:
                sources[setting] = "config.json"
                return config[key]
        if in_file.get(setting) is not None:
            sources[setting] = "file"
            return in_file[setting]
        sources[setting] = "default"
        return default

    eps = float(pick("eps", options.eps, defaults["eps"]))
    ctx = int(pick("context_length", options.context_length, defaults["context_length"]))
    base = pick("rope_freq_base", options.rope_freq_base, None)
    if not 0 < eps < 1:
        raise BadInputError(f"norm epsilon must be between 0 and 1, not {eps}")
    if ctx <= 0:
        raise BadInputError(f"context length must be positive, not {ctx}")
    if base is not None and float(base) <= 0:
        raise BadInputError(f"rope frequency base must be positive, not {base}")
    kv = config.get("num_key_value_heads")
    return Resolved(eps, ctx, None if base is None else float(base), kv if isinstance(kv, int) else None, sources)


def _read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise BadInputError("--metadata-dir is not a directory", folder)
    path = folder / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(read_text(path, "config.json", MAX_CONFIG_BYTES))
    except ValueError as e:
        raise BadInputError(f"not valid JSON: {e}", path) from None
    if not isinstance(data, dict):
        raise BadInputError("not a JSON object", path)
    return data
