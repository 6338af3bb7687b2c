"""Tell what a model file is: its container from the magic, then (legacy files) its family and block era.

`open_model` reads a file once with the matching bounded reader; `detect` says what was found and why.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gguf.constants import GGUF_MAGIC

from ggufkit.errors import BadInputError
from ggufkit.formats.gguf_file import GgufFile, read_gguf

if TYPE_CHECKING:  # the legacy readers (numpy, gguf-py, the families) are imported where a file is not GGUF
    from ggufkit.formats.legacy import LegacyModel


def sniff(path: str | os.PathLike[str]) -> str:
    """'gguf', 'legacy', or raises BadInputError naming what the file is not."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BadInputError("is a directory, not a model file", path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise BadInputError(f"cannot open: {e.strerror}", path) from None
    if len(head) < 4:
        raise BadInputError("too short to be a model file", path)
    (magic,) = struct.unpack("<I", head)
    if magic == GGUF_MAGIC:
        return "gguf"
    from ggufkit.formats.legacy import LEGACY_MAGICS

    if magic in LEGACY_MAGICS:
        return "legacy"
    raise BadInputError("not a GGUF or legacy GGML/GGMF/GGJT/GGCC/rwkv.cpp model file (unknown magic)", path)


def open_model(path: str | os.PathLike[str], family: str | None = None) -> GgufFile | LegacyModel:
    if sniff(path) == "gguf":
        return read_gguf(path)
    from ggufkit.formats.legacy import read_legacy

    return read_legacy(path, family)


@dataclass(frozen=True)
class Detection:
    container: str  # "GGUF v3", "GGJT v1", "GGML", ...
    family: str | None  # legacy files: the family whose layout the header has; GGUF: general.architecture
    quantization_version: int | None  # legacy files: 0, 1 or 2 (see formats/legacy/blocks.py)
    reasons: list[str] = field(default_factory=list)


def detect(model: GgufFile | LegacyModel) -> Detection:
    if isinstance(model, GgufFile):
        return Detection(model.label, model.architecture, None, ["magic 'GGUF'", "general.architecture"])
    fam = model.family
    reasons = [f"magic {model.container.lower()!r}" + (f", version {model.version}" if model.version else ""),
               f"{len(fam.hparams)} hparams in {fam.name}'s order"]
    try:
        fam.geometry(model, {})
        reasons.append(f"tensor names and shapes are {fam.name}'s")
    except BadInputError as e:
        reasons.append(f"not recognised as {fam.name}: {e.message}")
    era = {0: "before llama.cpp PR #1405 (old nibble order, f32 scales)", 1: "PR #1405..#1508 (f32 scales)",
           2: "today's block layouts"}
    reasons.append(f"quantization version {model.qversion}: {era.get(model.qversion, '?')}")
    if model.parts:
        reasons.append(f"{len(model.parts)} parts joined")
    return Detection(model.label, fam.name, model.qversion, reasons)
