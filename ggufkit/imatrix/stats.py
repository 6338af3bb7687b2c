"""What an importance matrix says about each tensor: llama-imatrix --show-statistics's figures.

Per tensor, over its mean squared activations (sums over counts, matrices without a count left out):
their sum, min, max, mean and standard deviation, the share above 1e-5 ("active"), the entropy of their
distribution (bits, and as a share of the most it could be), the share more than one standard deviation
above the mean (ZD), and the cosine similarity of the raw sums with the same tensor one block earlier.
Per block: those figures averaged, weighted by each tensor's element count. Computed in float64 here
(llama-imatrix accumulates in float32; the figures agree to display precision).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ggufkit.imatrix.matrix import Matrix

_BLOCK = re.compile(r"blk\.(\d+)\.")
ACTIVE = 1e-5


@dataclass
class TensorStats:
    tensor: str
    block: int | None
    sum: float  # Σ(Act²)
    min: float
    max: float
    mean: float
    stddev: float
    active: float  # share of values above 1e-5
    elements: int
    entropy: float  # bits
    entropy_norm: float  # entropy / log2(elements)
    zd: float  # share of values with a z-score above 1
    cossim: float | None  # against the same tensor one block earlier (None: no such tensor)
    counts: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def tensor_stats(m: Matrix) -> list[TensorStats]:
    """One row per tensor with data, in block order then by name."""
    out = []
    for name, e in m.entries.items():
        if e.counts.size == 0 or e.sums.size % e.counts.size:
            continue
        rows = e.sums.reshape(e.n_mat, -1).astype(np.float64)
        keep = e.counts > 0
        if not keep.any():
            continue
        act = (rows[keep] / e.counts[keep, None]).reshape(-1)
        total, mean = float(act.sum()), float(act.mean())
        dev = math.sqrt(max(float((act * act).mean()) - mean * mean, 0.0))
        p = act / total if total > 0 else np.zeros_like(act)
        entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
        match = _BLOCK.search(name)
        out.append(TensorStats(
            name, int(match[1]) if match else None, total, float(act.min()), float(act.max()), mean, dev,
            float((np.abs(act) > ACTIVE).mean()), act.size, entropy,
            entropy / math.log2(act.size) if act.size > 1 else 0.0,
            float(((act - mean) / dev > 1).mean()) if dev > 0 else 0.0, None, [int(c) for c in e.counts]))
    by_name = {t.tensor: t for t in out}
    for t in out:
        if t.block is not None:
            prev = t.tensor.replace(f"blk.{t.block}.", f"blk.{t.block - 1}.", 1)
            if prev in by_name:
                t.cossim = _cosine(m.entries[t.tensor].sums, m.entries[prev].sums)
    return sorted(out, key=lambda t: (t.block is None, t.block or 0, t.tensor))


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size != b.size:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else None


def block_stats(rows: list[TensorStats]) -> list[dict]:
    """Per block: Σ(Act²), ZD and cosine similarity averaged over its tensors, weighted by element count."""
    blocks: dict[int, list[TensorStats]] = {}
    for t in rows:
        if t.block is not None:
            blocks.setdefault(t.block, []).append(t)
    out = []
    for block, ts in sorted(blocks.items()):
        n = sum(t.elements for t in ts)
        out.append({"block": block, "sum": sum(t.sum * t.elements for t in ts) / n,
                    "zd": sum(t.zd * t.elements for t in ts) / n,
                    "cossim": sum((t.cossim or 0.0) * t.elements for t in ts) / n})
    return out


def describe(path: str | os.PathLike[str], m: Matrix) -> dict[str, Any]:
    """What `inspect` shows of an importance matrix file (stable keys, for --json too)."""
    rows = tensor_stats(m)
    return {
        "path": os.fspath(path), "format": "imatrix .dat" if m.legacy else "imatrix GGUF",
        "file_size": os.path.getsize(path), "datasets": m.datasets,
        "chunk_count": m.recorded_chunks, "chunk_size": m.chunk_size or None, "partial": m.partial,
        "entries": len(m.entries), "experts": max((e.n_mat for e in m.entries.values()), default=0),
        "tensors": [t.to_dict() for t in rows], "blocks": block_stats(rows),
    }
