"""Model file names: short ones for files shown side by side (what their names do not share), a legacy
file's GGUF, and a quantized child's, as llama.cpp users name them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

_SUFFIXES = (".gguf", ".bin")
_SEPARATORS = ".-_"


def short_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """`F16` and `Q4_K_M` for `model.F16.gguf` beside `model-Q4_K_M.gguf` (as `quantize` names children), `F16`
    and `F16-Q4_K_M` for `model.F16.gguf` beside `model.F16-Q4_K_M.gguf`; whole stems when the names share
    nothing up to a separator, or for one file."""
    stems = [_stem(Path(p).name) for p in paths]
    shared = os.path.commonprefix(stems) if len(stems) > 1 else ""
    # the shared part ends where every name has a separator next; else it is cut back to its last separator
    if not all(stem[len(shared):len(shared) + 1] in tuple(_SEPARATORS) for stem in stems):
        shared = shared[:max(shared.rfind(c) for c in _SEPARATORS) + 1]  # "model." not "model.F1"
    return [stem[len(shared):].lstrip(_SEPARATORS) or stem for stem in stems]


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


_BIN = re.compile(r"\.bin$", re.IGNORECASE)
_GGUF = re.compile(r"\.gguf$", re.IGNORECASE)
_GGML_MARK = re.compile(r"[.-]ggml(v\d)?(?=[.-]|$)", re.IGNORECASE)  # "-ggml", ".ggmlv3" (not a leading "ggml-")
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")  # llama.cpp's split files: NAME-00001-of-00003.gguf
# file types written into names: f16, bf16, q4_0, q4_k_m, iq2_xxs, tq1_0, mxfp4_moe, ... and the old q4_2, q4_3
_LEGACY_TYPES = ("Q4_2", "Q4_3", "FP16", "FP32")


def gguf_name(src: Path) -> str:
    """A legacy file's GGUF: llama-2-7b.ggmlv3.q4_0.bin -> llama-2-7b.q4_0.gguf"""
    return _GGML_MARK.sub("", _BIN.sub("", src.name)) + ".gguf"


def child_name(src: Path, type_name: str, known_types: Iterable[str]) -> str:
    """A quantized child's name: the source's own type (the last name part, if it is one of `known_types`)
    replaced by `type_name`, as llama.cpp users name files: SmolLM2-135M-Instruct.F16.gguf ->
    SmolLM2-135M-Instruct-Q4_K_M.gguf, llama-ggml-f16.bin -> llama-Q4_K_M.gguf, ggml-model-f16.gguf ->
    ggml-model-Q4_K_M.gguf. A name that is nothing but a type keeps it (f16.gguf -> f16-Q4_K_M.gguf)."""
    stem = _SHARD.sub("", _GGML_MARK.sub("", _BIN.sub("", _GGUF.sub("", src.name))))
    types = sorted({t.upper() for t in (*known_types, *_LEGACY_TYPES)}, key=len, reverse=True)
    typed = re.compile(r"(.+?)[-._](?:" + "|".join(map(re.escape, types)) + r")$", re.IGNORECASE)
    m = typed.fullmatch(stem)
    return f"{m[1] if m else stem}-{type_name}.gguf"
