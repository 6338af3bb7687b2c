"""Tell a file's format from its magic and read its header with the matching reader."""

from __future__ import annotations

import os
import struct

from gguf.constants import GGUF_MAGIC

from ggufkit.errors import BadInputError
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.formats.legacy import LEGACY_MAGICS, LegacyModel, read_legacy


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
    if magic in LEGACY_MAGICS:
        return "legacy"
    raise BadInputError("not a GGUF or legacy GGML/GGMF/GGJT model file (unknown magic)", path)


def read_model(path: str | os.PathLike[str]) -> GgufFile | LegacyModel:
    return read_gguf(path) if sniff(path) == "gguf" else read_legacy(path)
