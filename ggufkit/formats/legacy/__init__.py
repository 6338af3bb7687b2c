"""Files from before GGUF: llama.cpp's GGML/GGMF/GGJT containers (and, per family, the ggml examples').

`read_legacy` opens a file once: header, vocabulary and tensor table, validated, with the parts of a
multi-part model joined. Tensor data is read later, through `parts.RowReader`.
"""

from __future__ import annotations

import os

from ggufkit.errors import BadInputError
from ggufkit.families import FAMILIES
from ggufkit.formats.legacy.ggml import CONTAINERS, LegacyModel, read_container
from ggufkit.formats.legacy.parts import join

LEGACY_MAGICS = {c.magic: c.name for c in CONTAINERS.values()}

__all__ = ["LEGACY_MAGICS", "LegacyModel", "read_legacy"]


def read_legacy(path: str | os.PathLike[str], family: str | None = None) -> LegacyModel:
    """Read a legacy model; `family` (a name from families.FAMILIES) skips telling families apart."""
    fams = None
    if family is not None:
        if family not in FAMILIES:
            raise BadInputError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
        fams = [FAMILIES[family]]
    first = read_container(path, fams)
    return join(first, lambda p: read_container(p, [first.family]))
