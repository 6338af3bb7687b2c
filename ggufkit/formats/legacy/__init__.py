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

__all__ = ["LEGACY_MAGICS", "LegacyModel", "read_legacy", "not_that_family"]


def read_legacy(path: str | os.PathLike[str], family: str | None = None) -> LegacyModel:
    """Read a legacy model; `family` (a name from families.FAMILIES) skips telling families apart."""
    fams = None
    if family is not None:
        if family not in FAMILIES:
            raise BadInputError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
        fams = [FAMILIES[family]]
    try:
        first = read_container(path, fams)
    except BadInputError as e:
        raise (None if family is None else not_that_family(path, family, "the header is")) or e from None
    return join(first, lambda p: read_container(p, [first.family]))


def not_that_family(path: str | os.PathLike[str], family: str, what: str) -> BadInputError | None:
    """The error for `--arch FAMILY` on a file of another family (`what`: "the header is", "the tensors are"):
    which family the file reads as, found as if --arch were not given; None if it reads as no other."""
    try:
        m = read_container(path)
    except BadInputError:
        return None
    if m.family.name == family:
        return None
    then = (f"leave out --arch, or pass --arch {m.family.name}" if m.family.arch is not None
            else "a family llama.cpp cannot run (`ggufkit inspect` shows it)")
    return BadInputError(f"--arch {family}: {what} not {family}'s: it reads as {m.family.name}'s ({m.label}); {then}",
                         path)
