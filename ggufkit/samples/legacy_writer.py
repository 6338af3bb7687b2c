"""Writes ggml-era container files byte for byte as their programs did (llama.cpp's `llama_file_saver`
and convert scripts, the ggml examples' converters).

Used to make legacy sample models (no real ones can be downloaded here), so tests exercise the same
bytes real files hold: magic, version (not in GGML), the family's hparams, vocab (with f32 scores where
the container has them), then per tensor n_dims/name_len/type, dims (ne0 first), name, zero padding to
the container's alignment (GGJT: 32 bytes), data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import BinaryIO

from ggufkit.families.base import Family
from ggufkit.formats.legacy.ggml import BY_NAME
from ggufkit.formats.legacy.rwkv import TO_GGML as TO_RWKV

_PACK = {"u32": "<I", "i32": "<i", "f32": "<f"}
_FROM_GGML = {v: k for k, v in TO_RWKV.items()}


def write_legacy(
    fp: BinaryIO,
    family: Family,
    hparams: dict[str, int | float],
    vocab: Iterable[tuple[bytes, float]],
    tensors: Iterable[tuple[str, int, tuple[int, ...], memoryview | bytes]],
    container: str = "GGJT",
    version: int | None = 3,
    merges: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """`merges`: GGCC only (ggllm.cpp's falcon_quantize wrote them after the vocabulary)."""
    write_header(fp, family, hparams, vocab, container, version, merges)
    for name, ggml_type, shape, data in tensors:
        write_record(fp, container, name, ggml_type, shape)
        fp.write(data)


def write_header(fp: BinaryIO, family: Family, hparams: dict[str, int | float], vocab: Iterable[tuple[bytes, float]],
                 container: str = "GGJT", version: int | None = 3, merges: list[tuple[bytes, bytes]] | None = None
                 ) -> None:
    """Magic, version, hparams, vocabulary (and GGCC's merges): everything before the first tensor."""
    c = BY_NAME[container]
    fp.write(struct.pack("<I", c.magic))
    if version is not None:
        fp.write(struct.pack("<I", version))
    for p in family.hparams:
        fp.write(struct.pack(_PACK[p.kind], hparams[p.name]))
    vocab = list(vocab)
    if container == "GGCC":
        fp.write(struct.pack("<I", len(merges or [])))
    if family.vocab_count:  # the ggml examples' gpt-2, gpt-j and starcoder converters
        fp.write(struct.pack("<i", len(vocab)))
    scores = family.vocab_scores if family.vocab_scores is not None else c.scores
    for text, score in vocab:
        fp.write(struct.pack("<I", len(text)) + text)
        if scores:
            fp.write(struct.pack("<f", score))
    if container == "GGCC":
        fp.write(struct.pack("<I", len(merges or [])))
        for a, b in merges or []:
            fp.write(struct.pack("<I", len(a)) + a + struct.pack("<I", len(b)) + b)


def write_record(fp: BinaryIO, container: str, name: str, ggml_type: int, shape: tuple[int, ...]) -> int:
    """A tensor's record up to its data (n_dims, name length, type, dims, name, alignment padding);
    returns the offset its data starts at."""
    if container == "RWKV":
        ggml_type = _FROM_GGML[ggml_type]  # rwkv.cpp's own type numbers
    raw = name.encode("utf-8")
    fp.write(struct.pack(f"<III{len(shape)}I", len(shape), len(raw), ggml_type, *shape) + raw)
    fp.write(b"\0" * (-fp.tell() % BY_NAME[container].alignment))
    return fp.tell()
