"""Importance-matrix files: llama-imatrix's GGUF layout and its older .dat layout, read and written.

Read as llama.cpp's common/imatrix-loader.cpp reads them (GGUF: `<tensor>.in_sum2` and `<tensor>.counts`
F32 pairs, counts rounded to integers; .dat: entries of name, ncall, values, then an optional chunk count
and dataset name), with every count and length checked against the file first: a hostile file fails as one
line, early and small. Written as llama-imatrix writes them (tensor names sorted; .dat values stored as
mean x ncall, ncall = ceil(largest count / chunk size), 1 for a matrix with no data).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from gguf.constants import GGUF_MAGIC, GGMLQuantizationType, Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray
from ggufkit.formats.cursor import Cursor
from ggufkit.imatrix.matrix import Entry, Matrix

SUM2, COUNTS = ".in_sum2", ".counts"
PARTIAL_KEY = "ggufkit.imatrix.partial"  # ours: "N of M chunks" when Ctrl-C cut the run short
MAX_ENTRIES = 1 << 20
MAX_NAME = 1 << 12
MAX_COUNT = 1 << 53  # counts are float32 in the file; beyond this they are not whole numbers anyway


def is_imatrix_gguf(f) -> bool:
    """Whether a GGUF header (GgufFile) is an importance matrix's (llama-imatrix sets general.type)."""
    return f.kv.get(Keys.General.TYPE) == "imatrix"


def read_unknown(path: str | os.PathLike[str], not_a_model: BadInputError) -> Matrix:
    """A file with no model magic: a .dat matrix if it reads as one; else `not_a_model` is raised, or the
    .dat reader's error for a file named *.dat."""
    try:
        return _read_dat(os.fspath(path))
    except BadInputError:
        if os.fspath(path).endswith(".dat"):
            raise
        raise not_a_model from None


def read_matrix(path: str | os.PathLike[str]) -> Matrix:
    """Raw sums and counts (GGUF), or means x ncall with ncall as the count (.dat, `legacy`)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise BadInputError(f"cannot open: {e.strerror}", path) from None
    if os.path.isdir(path):
        raise BadInputError("is a directory, not an imatrix file", path)
    if len(head) == 4 and struct.unpack("<I", head)[0] == GGUF_MAGIC:
        return _read_gguf(path)
    return _read_dat(path)


def _read_gguf(path: str) -> Matrix:
    from ggufkit.formats.gguf_file import read_gguf

    f = read_gguf(path)
    pairs: dict[str, list] = {}
    for t in f.tensors:
        for suffix, slot in ((SUM2, 0), (COUNTS, 1)):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], [None, None])[slot] = t
    if not pairs:
        raise BadInputError("not an imatrix file: no <tensor>.in_sum2 / <tensor>.counts pairs", path)
    datasets, count, size = (f.kv.get(k) for k in (Keys.IMatrix.DATASETS, Keys.IMatrix.CHUNK_COUNT,
                                                    Keys.IMatrix.CHUNK_SIZE))
    if not (isinstance(datasets, (list, StringArray)) and isinstance(count, int) and isinstance(size, int)):
        raise BadInputError("missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)", path)
    out = Matrix(size, datasets=[str(d) for d in datasets], partial=PARTIAL_KEY in f.kv, recorded_chunks=count)
    with open(path, "rb") as fp:
        for name, (sums_t, counts_t) in sorted(pairs.items()):
            if sums_t is None or counts_t is None:
                raise BadInputError(f"imatrix has sums without counts (or counts without sums) for {name}", path)
            if sums_t.ggml_type != GGMLQuantizationType.F32 or counts_t.ggml_type != GGMLQuantizationType.F32:
                raise BadInputError(f"imatrix sums and counts for {name} must be F32", path)
            sums = _floats(fp, sums_t.offset, sums_t.n_elements)
            counts = _floats(fp, counts_t.offset, counts_t.n_elements)
            if counts.size == 0 or sums.size % counts.size:
                raise BadInputError(f"imatrix entry {name}: {sums.size} sums do not split into {counts.size} counts", path)
            _check_values(name, sums, counts, path)
            # lround, as common_imatrix_load
            whole = np.sign(counts) * np.floor(np.abs(counts.astype(np.float64)) + 0.5)
            out.entries[name] = Entry(sums, whole.astype(np.int64))
    return out


def _floats(fp, offset: int, n: int) -> np.ndarray:
    fp.seek(offset)
    return np.frombuffer(fp.read(4 * n), dtype="<f4").astype(np.float32)


def _check_values(name: str, sums: np.ndarray, counts: np.ndarray, path: str) -> None:
    """What llama.cpp would choke on later: non-finite sums (the quantizer throws), counts that are not
    counts (negative, non-finite, beyond float32's whole numbers)."""
    if not np.isfinite(sums).all():
        raise BadInputError(f"imatrix entry {name} holds non-finite sums", path)
    if not (np.isfinite(counts).all() and (counts >= 0).all() and (counts <= MAX_COUNT).all()):
        raise BadInputError(f"imatrix entry {name} holds counts that are not counts", path)


def _read_dat(path: str) -> Matrix:
    try:
        return _parse_dat(path)
    except BadInputError as e:
        if e.message.startswith(("not an imatrix file", "cannot open", "imatrix entry")):
            raise
        raise BadInputError(f"not an imatrix file: {e.message}", path) from None


def _parse_dat(path: str) -> Matrix:
    out = Matrix(0, legacy=True)
    with Cursor.open(path) as cur:
        n_entries = cur.i32("entry count")
        if not 1 <= n_entries <= MAX_ENTRIES:
            raise BadInputError(f"not an imatrix file: {n_entries} entries", path)
        cur.count(n_entries, 16, "entry count")  # name length, ncall, nval, one value at least
        for i in range(n_entries):
            length = cur.i32(f"name length of entry {i + 1}")
            if not 0 <= length <= MAX_NAME:
                raise BadInputError(f"not an imatrix file: entry {i + 1} has a {length}-byte name", path)
            name = cur.read(length, f"name of entry {i + 1}").split(b"\0", 1)[0].decode("utf-8", "replace")
            ncall, nval = cur.i32(f"ncall of entry {i + 1}"), cur.i32(f"value count of entry {i + 1}")
            if nval < 1 or 4 * nval > cur.left:
                raise BadInputError(f"not an imatrix file: entry {name!r} claims {nval} values", path)
            if name in out.entries:
                raise BadInputError(f"not an imatrix file: entry {name!r} appears twice", path)
            sums = np.frombuffer(cur.read(4 * nval, f"values of {name!r}"), dtype="<f4").astype(np.float32)
            _check_values(name, sums, np.array([max(ncall, 0)], np.float32), path)
            out.entries[name] = Entry(sums, np.array([ncall], np.int64))
        if cur.left >= 4:  # optional trailer: chunk count, then the dataset's name
            out.recorded_chunks = cur.i32("chunk count")
            if cur.left >= 4:
                length = cur.i32("dataset length")
                if 0 < length <= cur.left:
                    out.datasets.append(cur.read(length, "dataset").split(b"\0", 1)[0].decode("utf-8", "replace"))
    return out


def load_into(matrix: Matrix, path: Path) -> None:
    """--in-file: add a file's matrices to `matrix` (its chunk size set), as llama-imatrix's load_imatrix."""
    m = read_matrix(path)
    for name, e in m.entries.items():
        if m.legacy:
            matrix.add_legacy(name, e.sums, int(e.counts[0]), str(path))
        else:
            matrix.add_raw(name, e.sums, e.counts, str(path))
    matrix.datasets.extend(m.datasets)


def write_gguf(path: str | os.PathLike[str], m: Matrix, partial_note: str | None = None) -> None:
    """llama-imatrix's GGUF file (its keys only: no general.architecture); `partial_note` marks a run cut short."""
    import gguf

    w = gguf.GGUFWriter(os.fspath(path), "imatrix")
    w.kv_data[0].pop(Keys.General.ARCHITECTURE)  # gguf-py always adds one; llama-imatrix's files have none
    w.add_string(Keys.General.TYPE, "imatrix")
    w.add_array(Keys.IMatrix.DATASETS, list(m.datasets))
    w.add_uint32(Keys.IMatrix.CHUNK_COUNT, m.chunk_count)
    w.add_uint32(Keys.IMatrix.CHUNK_SIZE, m.chunk_size)
    if partial_note is not None:
        w.add_string(PARTIAL_KEY, partial_note)
    for name in sorted(m.entries):
        e = m.entries[name]
        if e.sums.size and e.counts.size:  # 1-D with one matrix: gguf drops trailing 1s from shapes, as there
            rows = (e.n_mat, e.n_cols) if e.n_mat > 1 else (e.n_cols,)
            w.add_tensor(name + SUM2, e.sums.reshape(rows))
            w.add_tensor(name + COUNTS, e.counts.astype(np.float32).reshape((e.n_mat, 1) if e.n_mat > 1 else (1,)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_dat(path: str | os.PathLike[str], m: Matrix, dataset: str) -> list[str]:
    """The legacy layout; returns the names left out (no data at all), as llama-imatrix warns of them."""
    kept = sorted(n for n, e in m.entries.items() if e.counts.size and (e.counts > 0).any())
    size = m.chunk_size
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(kept)))
        for name in kept:
            e = m.entries[name]
            raw = name.encode()
            ncall = int((e.counts.max() + size - 1) // size)  # ceiling: no accidental zeros
            counts = e.counts.astype(np.float32).repeat(e.n_cols)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(counts == 0, np.float32(1), e.sums / np.where(counts == 0, 1, counts))
            f.write(struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, e.sums.size))
            f.write((values.astype(np.float32) * np.float32(ncall)).astype("<f4").tobytes())
        f.write(struct.pack("<i", m.chunk_count))
        data = dataset.encode()
        f.write(struct.pack("<i", len(data)) + data)
    return sorted(set(m.entries) - set(kept))
