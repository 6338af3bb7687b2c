"""The two rearrangements that turn old quantized blocks into today's, fast enough to keep up with a disk.

Each works on a slice of whole blocks, `SUB_BLOCKS` at a time so that numpy's passes over it stay in
the CPU's cache, and writes into the caller's output (no array the size of the slice is allocated):
  - `reorder_nibbles`: the 32 4-bit values of a block from the old pair order (byte i holds x[2i] and
    x[2i+1]) to today's halves order (byte j holds x[j] and x[j+16]), as two 64-bit words per block:
    the low half of each word spreads its nibbles one byte apart (x[0..7] to the low nibbles of eight
    bytes), the high half likewise, then the words of the two halves are merged nibble-wise.
  - `scales_to_f16`: f32 scales (and mins) rounded to f16 by ggml's own row conversion, with the
    largest relative change a weight sees (blocks.py explains the figure).
"""

from __future__ import annotations

import numpy as np

from ggufkit.ggml_lib import to_f16

SUB_BLOCKS = 1 << 14

_U = np.uint64
_M16, _M8, _M4 = _U(0x0000FFFF0000FFFF), _U(0x00FF00FF00FF00FF), _U(0x0F0F0F0F0F0F0F0F)
_LOW32 = _U(0xFFFFFFFF)


def _spread(x: np.ndarray, tmp: np.ndarray) -> None:
    """In place: the 8 nibbles in the low 32 bits of each word, moved to the low nibbles of its 8 bytes."""
    for shift, mask in ((16, _M16), (8, _M8), (4, _M4)):
        np.left_shift(x, _U(shift), out=tmp)
        x |= tmp
        x &= mask


def reorder_nibbles(qs: np.ndarray, out: np.ndarray) -> None:
    """qs: (n, 16) uint8 in pair order (any row stride) -> out: (n, 16) uint8 in halves order."""
    n = qs.shape[0]
    words = np.empty((min(n, SUB_BLOCKS), 2), _U)
    parts = np.empty((4, words.shape[0]), _U)
    tmp = np.empty(words.shape[0], _U)
    for s in range(0, n, SUB_BLOCKS):
        m = min(SUB_BLOCKS, n - s)
        w = words[:m]
        w.view(np.uint8).reshape(m, 16)[:] = qs[s:s + m]
        a, b = w[:, 0], w[:, 1]  # a: x[0..15], b: x[16..31], nibble k of a word = x[k]
        p, t = parts[:, :m], tmp[:m]
        np.bitwise_and(a, _LOW32, out=p[0])  # x[0..7]
        np.bitwise_and(b, _LOW32, out=p[1])  # x[16..23]
        np.right_shift(a, _U(32), out=p[2])  # x[8..15]
        np.right_shift(b, _U(32), out=p[3])  # x[24..31]
        for row in p:
            _spread(row, t)
        p[1] <<= _U(4)
        p[3] <<= _U(4)
        np.bitwise_or(p[0], p[1], out=w[:, 0])  # bytes 0..7: x[j] | x[j+16] << 4
        np.bitwise_or(p[2], p[3], out=w[:, 1])  # bytes 8..15
        out[s:s + m] = w.view(np.uint8).reshape(m, 16)


def scales_to_f16(raw: np.ndarray, out: np.ndarray, has_min: bool) -> float:
    """raw: (n, block bytes) with an f32 scale at byte 0 (and an f32 min at byte 4); writes them as f16 at
    out's bytes 0 (and 2). Returns the largest relative weight change the rounding makes (0 if none)."""
    n = raw.shape[0]
    k = 2 if has_min else 1
    f32 = np.empty((min(n, SUB_BLOCKS), k), np.float32)
    worst = 0.0
    for s in range(0, n, SUB_BLOCKS):
        m = min(SUB_BLOCKS, n - s)
        x = f32[:m]
        x.view(np.uint8)[:] = raw[s:s + m, :4 * k]
        x16 = to_f16(x)
        out[s:s + m, :2 * k] = x16.view(np.uint8)
        worst = max(worst, _change(x, x16))
    return worst


def _change(x: np.ndarray, x16: np.ndarray) -> float:
    """Largest change of a dequantized weight from rounding the scales, relative to the largest weight of
    its block: for Q4_0/Q8_0 (x: d) the scale's own relative change; for Q4_1 (x: d, m; w = q*d + m, q
    in 0..15) the extremes are at q = 0 and q = 15. All-zero blocks (0/0) and scales beyond f16's range
    (inf) say nothing here. float32 is plenty for a figure of ~1e-3."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        dx = x16.astype(np.float32)
        dx -= x
        if x.shape[1] == 2:
            d, m, dd, dm = x[:, 0], x[:, 1], dx[:, 0], dx[:, 1]
            change = np.maximum(np.abs(dm), np.abs(15 * dd + dm))
            size = np.maximum(np.abs(m), np.abs(15 * d + m))
        else:
            change, size = np.abs(dx[:, 0], out=dx[:, 0]), np.abs(x[:, 0])
        change /= size
    if size.size and np.max(size) > 65504:  # a scale f16 cannot hold: its inf says nothing
        change[np.isinf(change)] = np.nan
    worst = np.fmax.reduce(change) if change.size else np.nan
    return 0.0 if np.isnan(worst) else float(worst)
