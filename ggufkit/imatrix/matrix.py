"""An importance matrix as llama-imatrix keeps it: per weight tensor, raw sums of squared activations per
input column (one row of them per expert for MUL_MAT_ID) and how many activation rows went into each.

llama-imatrix's rules kept here (tools/imatrix/imatrix.cpp): counts are integers (stored as F32 in the
GGUF file and rounded back on reading); the chunk count is the largest count over the chunk size; a dense
tensor keeps one count; a legacy .dat entry, loaded, becomes sums x chunk size with count ncall x chunk size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ggufkit.errors import BadInputError


@dataclass
class Entry:
    sums: np.ndarray  # float32, n_mat * n_cols: in_sum2
    counts: np.ndarray  # int64, n_mat: activation rows summed into each matrix's row of sums

    @property
    def n_mat(self) -> int:
        return len(self.counts)

    @property
    def n_cols(self) -> int:
        return len(self.sums) // max(len(self.counts), 1)

    def copy(self) -> Entry:
        return Entry(self.sums.copy(), self.counts.copy())


@dataclass
class Matrix:
    chunk_size: int
    entries: dict[str, Entry] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    partial: bool = False  # interrupted: what was gathered before Ctrl-C
    legacy: bool = False  # read from a .dat file: sums are means x ncall, the one count is ncall
    recorded_chunks: int | None = None  # read from a file: the chunk count it states

    @property
    def chunk_count(self) -> int:
        """llama-imatrix's m_last_chunk: the largest count over the chunk size."""
        most = max((int(e.counts.max()) for e in self.entries.values() if e.counts.size), default=0)
        return most // self.chunk_size if self.chunk_size > 0 else 0

    def snapshot(self) -> dict[str, Entry]:
        return {k: e.copy() for k, e in self.entries.items()}

    def restore(self, saved: dict[str, Entry]) -> None:
        self.entries = saved

    def add_raw(self, name: str, sums: np.ndarray, counts: np.ndarray, where: str) -> None:
        """Accumulate a GGUF entry (raw sums and counts), as llama-imatrix's load_imatrix does."""
        e = self.entries.get(name)
        if e is None:
            self.entries[name] = Entry(sums.astype(np.float32, copy=True), counts.astype(np.int64, copy=True))
            return
        if e.sums.size != sums.size:
            raise BadInputError(f"{name} has {sums.size} sums here, {e.sums.size} in the matrices before it: "
                                "not matrices of the same model", where)
        if e.counts.size == 1 and counts.size > 1:
            e.counts = np.full(counts.size, e.counts[0], np.int64)
        elif e.counts.size != counts.size:
            raise BadInputError(f"{name} has {counts.size} counts here, {e.counts.size} in the matrices before it",
                                where)
        e.sums += sums
        e.counts += counts

    def add_legacy(self, name: str, sums: np.ndarray, ncall: int, where: str) -> None:
        """Accumulate a .dat entry: its sums are mean squares x ncall, so x chunk size gives raw sums again."""
        e = self.entries.setdefault(name, Entry(np.zeros(sums.size, np.float32), np.zeros(1, np.int64)))
        if e.sums.size != sums.size:
            raise BadInputError(f"{name} has {sums.size} sums here, {e.sums.size} in the matrices before it", where)
        e.sums += sums * np.float32(self.chunk_size)
        e.counts += ncall * self.chunk_size


def normalised(m: Matrix) -> dict[str, np.ndarray]:
    """What llama-quantize hands the quantizer (tools/quantize/quantize.cpp, load_imatrix), float32 as there:
    per matrix, sums over its count, or 1s where the count is 0; for a legacy file, sums over ncall (the
    sums as they are when ncall is 0)."""
    out = {}
    for name, e in m.entries.items():
        rows = e.sums.reshape(e.n_mat, -1)
        counts = e.counts.astype(np.float32).reshape(-1, 1)
        if m.legacy and e.counts[0] <= 0:
            values = rows
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(counts > 0, rows / np.where(counts > 0, counts, 1), np.float32(1))
        out[name] = values.astype(np.float32).reshape(-1)
    return out


def check_matches(m: Matrix, model, where: str | os.PathLike[str], model_path: str | os.PathLike[str]) -> None:
    """That `m` holds matrices of `model`'s weights (a GgufFile): every entry names one of its tensors and
    has that tensor's row length per expert, as llama-quantize demands (else it throws mid-file)."""
    shapes = {t.name: t.shape for t in model.tensors}
    for name, e in sorted(m.entries.items()):
        shape = shapes.get(name)
        if shape is None:
            raise BadInputError(f"{name} is not a tensor of {model_path}: an importance matrix of another model?",
                                where)
        expected = shape[0] * (shape[2] if len(shape) > 2 else 1)
        if e.sums.size != expected:
            raise BadInputError(f"{name} has {e.sums.size} sums, its tensor in {model_path} needs {expected}: "
                                "an importance matrix of another model?", where)
