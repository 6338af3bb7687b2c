"""Short names for model files shown side by side: what their file names do not share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

_SUFFIXES = (".gguf", ".bin")


def short_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """`F16` and `F16-Q4_K_M` for `model.F16.gguf` beside `model.F16-Q4_K_M.gguf`; whole stems when the
    names share nothing up to a separator, or for one file."""
    stems = [_stem(Path(p).name) for p in paths]
    shared = os.path.commonprefix(stems) if len(stems) > 1 else ""
    shared = shared[:max(shared.rfind(c) for c in ".-_") + 1]  # cut at a separator: "model." not "model.F1"
    return [stem[len(shared):] or stem for stem in stems]


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
