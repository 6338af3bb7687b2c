"""Presets: named bundles of run settings (sampling, template, system prompt, context, threads, GPU layers).

A preset is a flat TOML table keyed by setting names, which are the flag names with underscores
(`temp = 0.7`, `top_k = 40`, `template = "chatml"`, `system = "..."`, `ctx = 8192`, `gpu_layers = "all"`).
The keys and their types are RunSettings' (runtime/settings.py). Flags given on the command line
override a preset.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError, did_you_mean
from ggufkit.runtime.settings import setting_types

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


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A built-in preset by name, or a TOML file; values are checked for name and type."""
    path = Path(name_or_path)
    if name_or_path in BUILTIN_PRESETS and not path.exists():
        return check_preset(BUILTIN_PRESETS[name_or_path])
    try:
        data = path.read_bytes()[: MAX_PRESET_BYTES + 1]
    except OSError as e:
        hint = "" if path.exists() else (did_you_mean(name_or_path, BUILTIN_PRESETS)
                                         or f" (built-in presets: {', '.join(BUILTIN_PRESETS)})")
        raise BadInputError(f"cannot read preset: {e.strerror}{hint}", path) from None
    if len(data) > MAX_PRESET_BYTES:
        raise BadInputError("preset file is larger than 1 MiB", path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInputError(f"preset is not valid TOML: {e}", path) from None
    return check_preset(doc, path)


def check_preset(doc: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Setting name -> value, typed as RunSettings wants it (a TOML integer for a float setting is a float,
    a string for a file setting a Path, a list of strings for `stop` a tuple)."""
    hints = setting_types()
    out: dict[str, Any] = {}
    for key, value in doc.items():
        norm = key.replace("-", "_")
        if norm not in hints:
            raise BadInputError(f"unknown preset setting {key!r} (known: {', '.join(hints)})", path)
        accepted = toml_types(hints[norm])
        if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
            raise BadInputError(f"preset setting {key!r} should be {' or '.join(t.__name__ for t in accepted)}, "
                                f"not {type(value).__name__}", path)
        if isinstance(value, list):
            if not all(isinstance(s, str) for s in value):
                raise BadInputError(f"preset setting {key!r} should be a list of strings", path)
            value = tuple(value)
        elif float in accepted and isinstance(value, int):
            value = float(value)
        elif isinstance(value, str) and str not in _members(hints[norm]):
            value = Path(value) if value else None  # a file setting; "" names none
        out[norm] = value
    return out


def toml_types(hint: Any) -> tuple[type, ...]:
    """The TOML value types a setting of type `hint` accepts: a float takes an integer too, a Path a
    string, a tuple of strings a list (of strings: checked by check_preset)."""
    accepted: list[type] = []
    for t in _members(hint):
        if t is float:
            accepted += [float, int]
        elif t is Path:
            accepted.append(str)
        elif typing.get_origin(t) is tuple:
            accepted.append(list)
        elif t is not type(None):
            accepted.append(t)
    return tuple(dict.fromkeys(accepted))


def _members(hint: Any) -> tuple[Any, ...]:
    """The types of a union (`int | None`: int, NoneType), or the type itself."""
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
