"""Quantized block layouts of the GGML era, and one repacker per layout change into today's blocks.

A legacy file's "quantization version" says which layouts its blocks use:
  0  before llama.cpp PR #1405 / ggml GGML_QNT_VERSION 0 (GGML, GGMF, GGJT v1): 4-bit values stored in
     element pairs (byte i = x[2i] | x[2i+1] << 4); Q4_0/Q4_1/Q8_0 scales are f32; Q4_2 and Q4_3
     (16-element blocks, removed by #1405) exist.
  1  PR #1405 .. PR #1508 (GGJT v2, GGML_QNT_VERSION 1): today's nibble order (byte j = x[j] | x[j+16] << 4),
     scales still f32 in Q4_0/Q4_1/Q8_0.
  2  PR #1508 on (GGJT v3, GGML_QNT_VERSION 2): today's layouts, copied unchanged.
Q5_0/Q5_1 always had f16 scales and kept the 5th bits (qh) in element order; only their nibbles moved.

Every function works on a chunk of whole blocks, `raw` of shape (n_blocks, block bytes), uint8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

from ggufkit.formats.legacy.repack import repack_blocks

Q4_2, Q4_3 = 4, 5  # type ids of the removed April 2023 types (today's 4 and 5 are unused)

EXACT, F16_SCALES, REQUANTIZED = "exact", "scales rounded to f16", "requantized"


@dataclass(frozen=True)
class Layout:
    """One tensor type as a given quantization version stored it."""

    name: str
    block: int  # elements per block
    nbytes: int  # bytes per block
    today: int | None  # today's type these blocks repack into (None: must be requantized)
    loss: str  # EXACT | F16_SCALES | REQUANTIZED
    dequantize: Callable[[np.ndarray], np.ndarray]  # (n, nbytes) uint8 -> (n, block) float32
    # (blocks, optional output of today's blocks) -> (today's blocks, largest relative weight change from
    # rounding f32 scales, or None); None: the bytes are today's already
    repack: Callable[..., tuple[np.ndarray, float | None]] | None = None
    # (scale, min or None, values in element order) -> blocks: for writers of sample files
    pack: Callable[[np.ndarray, np.ndarray | None, np.ndarray], np.ndarray] | None = None


def _f32(raw: np.ndarray, at: int) -> np.ndarray:
    return np.ascontiguousarray(raw[:, at : at + 4]).view("<f4")  # (n, 1)


def _f16(raw: np.ndarray, at: int) -> np.ndarray:
    return np.ascontiguousarray(raw[:, at : at + 2]).view("<f2").astype(np.float32)


def _nibbles_paired(qs: np.ndarray) -> np.ndarray:
    """Old order: byte i holds x[2i] (low) and x[2i+1] (high). Returns values in element order."""
    q = np.empty((qs.shape[0], qs.shape[1] * 2), np.uint8)
    q[:, 0::2] = qs & 0x0F
    q[:, 1::2] = qs >> 4
    return q


def _nibbles_split(qs: np.ndarray) -> np.ndarray:
    """Today's order: byte j holds x[j] (low) and x[j + half] (high)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _high_bits(raw: np.ndarray, at: int) -> np.ndarray:
    qh = np.ascontiguousarray(raw[:, at : at + 4]).view("<u4")
    return (((qh >> np.arange(32, dtype=np.uint32)) & 1) << 4).astype(np.uint8)  # (n, 32) in element order


def _make(name: str, block: int, scale: str, has_min: bool, paired: bool, high_bits: bool = False,
          q8: bool = False, today: int | None = None) -> Layout:
    """A layout from its parts: the scale's width, a min, the nibble order, 5th bits, or int8 values."""
    width = 4 if scale == "f32" else 2
    head = width * (2 if has_min else 1)
    qh_at = head
    qs_at = head + (4 if high_bits else 0)
    n_qs = block if q8 else block // 2
    nbytes = qs_at + n_qs
    read_scale = _f32 if scale == "f32" else _f16
    offset = 0 if has_min else (16 if high_bits else 8)

    def values(raw: np.ndarray) -> np.ndarray:
        qs = raw[:, qs_at:]
        if q8:
            return qs.view(np.int8).astype(np.float32)
        q = _nibbles_paired(qs) if paired else _nibbles_split(qs)
        if high_bits:
            q = q | _high_bits(raw, qh_at)
        return q.astype(np.float32) - offset

    def dequantize(raw: np.ndarray) -> np.ndarray:
        d = read_scale(raw, 0)
        x = values(raw) * d
        return x + read_scale(raw, width) if has_min else x

    def pack(d: np.ndarray, m: np.ndarray | None, q: np.ndarray) -> np.ndarray:
        dtype = "<f4" if scale == "f32" else "<f2"
        parts = [d.astype(dtype).reshape(-1, 1).view(np.uint8)]
        if has_min:
            assert m is not None
            parts.append(m.astype(dtype).reshape(-1, 1).view(np.uint8))
        if q8:
            parts.append(q.astype(np.int8).view(np.uint8))
        else:
            q = q.astype(np.uint32)
            if high_bits:
                qh = ((q >> 4) << np.arange(32, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
                parts.append(qh.astype("<u4").reshape(-1, 1).view(np.uint8))
            q = (q & 0x0F).astype(np.uint8)
            half = q.shape[1] // 2
            parts.append(q[:, 0::2] | (q[:, 1::2] << 4) if paired else q[:, :half] | (q[:, half:] << 4))
        return np.concatenate(parts, axis=1)

    repack = None
    loss = EXACT
    if today is not None and (scale == "f32" or paired):
        out_head = 2 * (2 if has_min else 1)  # f16 scale (and min)

        def repack(raw: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, float | None]:
            if out is None:
                out = np.empty((raw.shape[0], nbytes - head + out_head), np.uint8)
            return out, repack_blocks(raw, out, scale == "f32", has_min, high_bits, paired)

        loss = F16_SCALES if scale == "f32" else EXACT
    if today is None:
        loss = REQUANTIZED
    layout = Layout(name, block, nbytes, today, loss, dequantize, repack, pack)
    if today is not None:  # the repacked block is exactly today's
        assert GGML_QUANT_SIZES[T(today)][1] == nbytes - head + 2 * (2 if has_min else 1), name
    return layout


def _today(t: T) -> Layout:
    """A type whose blocks are today's: copied as they are; dequantized by gguf-py."""
    from gguf.quants import dequantize

    block, nbytes = GGML_QUANT_SIZES[t]

    def deq(raw: np.ndarray) -> np.ndarray:
        return dequantize(raw, t).reshape(raw.shape[0], block).astype(np.float32)

    return Layout(t.name, block, nbytes, int(t), EXACT, deq)


_OLD: dict[tuple[int, int], Layout] = {
    (0, T.Q4_0): _make("Q4_0", 32, "f32", False, True, today=T.Q4_0),
    (0, T.Q4_1): _make("Q4_1", 32, "f32", True, True, today=T.Q4_1),
    (0, Q4_2): _make("Q4_2", 16, "f16", False, True),
    (0, Q4_3): _make("Q4_3", 16, "f16", True, True),
    (0, T.Q5_0): _make("Q5_0", 32, "f16", False, True, high_bits=True, today=T.Q5_0),
    (0, T.Q5_1): _make("Q5_1", 32, "f16", True, True, high_bits=True, today=T.Q5_1),
    (0, T.Q8_0): _make("Q8_0", 32, "f32", False, False, q8=True, today=T.Q8_0),
    (1, T.Q4_0): _make("Q4_0", 32, "f32", False, False, today=T.Q4_0),
    (1, T.Q4_1): _make("Q4_1", 32, "f32", True, False, today=T.Q4_1),
    (1, T.Q8_0): _make("Q8_0", 32, "f32", False, False, q8=True, today=T.Q8_0),
    # already today's bytes; spelled out so sample writers can pack them
    (1, T.Q5_0): _make("Q5_0", 32, "f16", False, False, high_bits=True, today=T.Q5_0),
    (1, T.Q5_1): _make("Q5_1", 32, "f16", True, False, high_bits=True, today=T.Q5_1),
}
# Types each quantization version could hold in a file (Q8_1 and Q8_K were only ever intermediate).
_ERA_TYPES = {
    0: (T.F32, T.F16, T.Q4_0, T.Q4_1, Q4_2, Q4_3, T.Q5_0, T.Q5_1, T.Q8_0),
    1: (T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0),
    2: (T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K),
}
QUANT_VERSIONS = tuple(_ERA_TYPES)


def layout(qversion: int, ggml_type: int) -> Layout | None:
    """How a tensor of `ggml_type` is stored at `qversion`, or None if that version had no such type."""
    if ggml_type not in _ERA_TYPES.get(qversion, ()):
        return None
    return _OLD.get((qversion, ggml_type)) or _today(T(ggml_type))


def era_type_name(ggml_type: int) -> str:
    if ggml_type in (Q4_2, Q4_3):
        return "Q4_2" if ggml_type == Q4_2 else "Q4_3"
    try:
        return T(ggml_type).name
    except ValueError:
        return f"type{ggml_type}"


# Today's Q4_0 and Q5_0 blocks spelled out, so sample writers can pack values their own quantizer made.
TODAY_PACKERS = {
    T.Q4_0: _make("Q4_0", 32, "f16", False, False, today=T.Q4_0),
    T.Q5_0: _make("Q5_0", 32, "f16", False, False, high_bits=True, today=T.Q5_0),
}
