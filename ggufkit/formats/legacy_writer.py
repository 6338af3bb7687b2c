"""Writes legacy llama.cpp files byte for byte as pre-GGUF llama.cpp's `llama_file_saver` did.

Used to make legacy sample models (no real ones can be downloaded here), so tests exercise the same
bytes that real "ggmlv3" files hold: magic, version, 7 hparams, vocab with f32 scores, then per
tensor n_dims/name_len/type, dims (ne0 first), name, zero padding to 32 bytes, data. The older
containers (GGML: no version, no scores; GGMF: no padding) can be written too, for tests of readers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import astuple
from typing import BinaryIO

from ggufkit.formats.legacy import GGJT_ALIGNMENT, MAGIC_GGJT, MAGIC_GGMF, MAGIC_GGML, LegacyHparams

_MAGICS = {"GGML": MAGIC_GGML, "GGMF": MAGIC_GGMF, "GGJT": MAGIC_GGJT}


def write_legacy(
    fp: BinaryIO,
    hparams: LegacyHparams,
    vocab: Iterable[tuple[bytes, float]],
    tensors: Iterable[tuple[str, int, tuple[int, ...], memoryview | bytes]],
    container: str = "GGJT",
    version: int | None = 3,
) -> None:
    fp.write(struct.pack("<I", _MAGICS[container]))
    if container != "GGML":
        fp.write(struct.pack("<I", version))
    fp.write(struct.pack("<7I", *astuple(hparams)))
    for text, score in vocab:
        fp.write(struct.pack("<I", len(text)) + text)
        if container != "GGML":
            fp.write(struct.pack("<f", score))
    for name, ggml_type, shape, data in tensors:
        raw = name.encode("utf-8")
        fp.write(struct.pack(f"<III{len(shape)}I", len(shape), len(raw), ggml_type, *shape) + raw)
        if container == "GGJT":
            fp.write(b"\0" * (-fp.tell() % GGJT_ALIGNMENT))
        fp.write(data)
