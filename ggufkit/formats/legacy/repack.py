"""Old quantized blocks rearranged into today's, fast enough to keep up with a disk.

`repack_blocks` works on a slice of whole blocks, SUB_BLOCKS at a time so numpy's passes stay in the
CPU's cache. numpy is quick on long one-dimensional runs and slow on many short rows, so every field is
reached as a column: the rows are viewed as 16-bit lanes (32-bit for f32 scales), and lane j of every
block is one strided 1-D array:
  - f32 scales (and mins) are rounded to f16 by ggml's own row conversion, and the largest relative
    change a weight sees is measured (`_change`);
  - 5th bits (Q5) are copied as they are;
  - 4-bit values go from the old pair order (byte i holds x[2i] and x[2i+1]) to today's halves order
    (byte j holds x[j] and x[j+16]) in `_reorder`: with a = bytes 0-7 and b = bytes 8-15 as 64-bit
    words, today's byte 2k is a[k]'s low nibble under b[k]'s low nibble, byte 2k+1 their high nibbles;
    the even and odd bytes are then woven together through 16-bit lanes.
"""

from __future__ import annotations

import numpy as np

from ggufkit.ggml_lib import to_f16

SUB_BLOCKS = 1 << 13
_U16, _U64 = np.uint16, np.uint64
_LOW, _HIGH = _U64(0x0F0F0F0F0F0F0F0F), _U64(0xF0F0F0F0F0F0F0F0)


def repack_blocks(raw: np.ndarray, out: np.ndarray, f32_scales: bool, has_min: bool, high_bits: bool,
                  paired: bool) -> float | None:
    """raw: (n, old block bytes) uint8 -> out: (n, today's block bytes) uint8, both C-contiguous. The old
    block is [scale (, min)] [qh: 4 bytes, Q5 only] [values]; today's the same with f16 scales. Returns the
    largest relative weight change from rounding f32 scales, or None if the scales were f16 already."""
    raw = np.ascontiguousarray(raw)
    r16, o16 = raw.view(_U16), out.view(_U16)
    k = 2 if has_min else 1
    hin, qh = (2 * k if f32_scales else k), (2 if high_bits else 0)
    qi, qo = hin + qh, k + qh  # where the values start, in 16-bit lanes
    n = raw.shape[0]
    sub = min(n, SUB_BLOCKS)
    scratch = _Scratch(sub) if paired else None
    scales = np.empty((k, sub), np.float32)
    r32 = raw.view(np.float32) if f32_scales else None
    worst = None
    for s in range(0, n, SUB_BLOCKS):
        m = min(SUB_BLOCKS, n - s)
        rows, into = slice(s, s + m), o16[s:s + m]
        if r32 is not None:
            x = scales[:, :m]
            for j in range(k):
                x[j] = r32[rows, j]
            x16 = to_f16(x)
            for j in range(k):
                into[:, j] = x16[j].view(_U16)
            worst = max(worst or 0.0, _change(x, x16))
        lanes = range(k, k + qh) if r32 is not None else range(k + qh)  # f16 scales, qh: as they are
        for j in lanes:
            into[:, j] = r16[rows, j + hin - k]
        if paired:
            _reorder(r16[rows, qi:qi + 8], into[:, qo:qo + 8], scratch, m)
        elif o16.shape[1] - qo > 8:  # Q8_0's 16 lanes: one copy of whole rows beats 16 column copies
            into[:, qo:] = r16[rows, qi:]
        else:
            for j in range(qo, o16.shape[1]):
                into[:, j] = r16[rows, j + qi - qo]
    return worst


class _Scratch:
    def __init__(self, n: int):
        self.words = np.empty((n, 2), _U64)
        self.even, self.odd, self.tmp = (np.empty(n, _U64) for _ in range(3))
        self.woven, self.tmp8 = np.empty((n, 8), _U16), np.empty((n, 8), _U16)


def _reorder(q: np.ndarray, out: np.ndarray, scratch: _Scratch, m: int) -> None:
    """q: (m, 8) 16-bit lanes of 16 bytes in pair order -> out: (m, 8) lanes in halves order."""
    words = scratch.words[:m]
    lanes = words.view(_U16)
    for j in range(8):
        lanes[:, j] = q[:, j]
    a, b = words[:, 0], words[:, 1]
    even, odd, tmp = scratch.even[:m], scratch.odd[:m], scratch.tmp[:m]
    np.bitwise_and(a, _LOW, out=even)  # today's byte 2k: a[k] & 15 | (b[k] & 15) << 4
    np.bitwise_and(b, _LOW, out=tmp)
    tmp <<= _U64(4)
    even |= tmp
    np.right_shift(a, _U64(4), out=odd)  # today's byte 2k+1: a[k] >> 4 | b[k] & 0xF0
    odd &= _LOW
    np.bitwise_and(b, _HIGH, out=tmp)
    odd |= tmp
    woven, tmp8 = scratch.woven[:m], scratch.tmp8[:m]
    np.copyto(woven, even.view(np.uint8).reshape(m, 8))  # the even bytes, widened to 16-bit lanes
    np.copyto(tmp8, odd.view(np.uint8).reshape(m, 8))
    tmp8 <<= _U16(8)
    woven |= tmp8
    for j in range(8):
        out[:, j] = woven[:, j]


def _change(x: np.ndarray, x16: np.ndarray) -> float:
    """Largest change of a dequantized weight from rounding the scales, relative to the largest weight of
    its block: for Q4_0/Q8_0 (x: [d]) the scale's own relative change; for Q4_1 (x: [d, m]; w = q*d + m,
    q in 0..15) the extremes are at q = 0 and q = 15. All-zero blocks (0/0) and scales beyond f16's range
    (inf) say nothing here. float32 is plenty for a figure of ~1e-3."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        dx = x16.astype(np.float32)
        dx -= x
        if x.shape[0] == 2:
            d, m, dd, dm = x[0], x[1], dx[0], dx[1]
            change = np.maximum(np.abs(dm), np.abs(15 * dd + dm))
            size = np.maximum(np.abs(m), np.abs(15 * d + m))
        else:
            change, size = np.abs(dx[0], out=dx[0]), np.abs(x[0])
        change /= size
    if size.size and np.max(size) > 65504:  # a scale f16 cannot hold: its inf says nothing
        change[np.isinf(change)] = np.nan
    worst = np.fmax.reduce(change) if change.size else np.nan
    return 0.0 if np.isnan(worst) else float(worst)
