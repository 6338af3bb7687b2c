"""Importance-matrix files (llama-imatrix's GGUF output, or its older .dat format), read as llama-quantize does.

llama.cpp's loader lives in its `common` library, which llama-cpp-python does not ship; the public
quantize API takes the per-tensor vectors directly, so this module reproduces common/imatrix-loader.cpp
plus quantize.cpp's normalisation (sums divided by counts), float32 for float32, to give identical files.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np
from gguf.constants import GGUF_MAGIC, GGMLQuantizationType, Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.gguf_file import read_gguf

_SUM2, _COUNTS = ".in_sum2", ".counts"
MAX_ENTRIES = 1 << 20
MAX_NAME = 1 << 12


@dataclass
class Imatrix:
    entries: dict[str, np.ndarray] = field(default_factory=dict)  # tensor name -> float32 importance
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0


def read_imatrix(path: str | os.PathLike[str]) -> Imatrix:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise BadInputError(f"cannot open: {e.strerror}", path) from None
    if len(head) == 4 and struct.unpack("<I", head)[0] == GGUF_MAGIC:
        return _read_gguf(path)
    return _read_legacy(path)


def _read_gguf(path: str) -> Imatrix:
    f = read_gguf(path)
    if not f.tensors:
        raise BadInputError("imatrix file holds no data", path)
    datasets = f.kv.get(Keys.IMatrix.DATASETS)
    if not (isinstance(datasets, list) and Keys.IMatrix.CHUNK_COUNT in f.kv and Keys.IMatrix.CHUNK_SIZE in f.kv):
        raise BadInputError("missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)", path)
    pairs: dict[str, list] = {}
    for t in f.tensors:
        for suffix, slot in ((_SUM2, 0), (_COUNTS, 1)):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], [None, None])[slot] = t
    out = Imatrix(datasets=[str(d) for d in datasets], chunk_count=int(f.kv[Keys.IMatrix.CHUNK_COUNT]))
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
            # lround, then float: as common_imatrix_load and quantize.cpp's load_imatrix
            whole = np.sign(counts) * np.floor(np.abs(counts.astype(np.float64)) + 0.5)
            per = whole.astype(np.int64).astype(np.float32).repeat(sums.size // counts.size)
            with np.errstate(divide="ignore", invalid="ignore"):
                out.entries[name] = np.where(per > 0, sums / np.where(per > 0, per, 1), np.float32(1)).astype(np.float32)
    return out


def _floats(fp, offset: int, n: int) -> np.ndarray:
    fp.seek(offset)
    return np.frombuffer(fp.read(4 * n), dtype="<f4").astype(np.float32)


def _read_legacy(path: str) -> Imatrix:
    with open(path, "rb") as fp:
        data = fp.read()
    pos = 0

    def take(fmt: str, what: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise BadInputError(f"not an imatrix file: truncated at {what}", path)
        value = struct.unpack_from(fmt, data, pos)
        pos += size
        return value[0] if len(value) == 1 else value

    n_entries = take("<i", "entry count")
    if not 1 <= n_entries <= MAX_ENTRIES:
        raise BadInputError(f"not an imatrix file: {n_entries} entries", path)
    out = Imatrix()
    for i in range(n_entries):
        length = take("<i", f"name length of entry {i + 1}")
        if not 0 <= length <= MAX_NAME:
            raise BadInputError(f"not an imatrix file: entry {i + 1} has a {length}-byte name", path)
        name = take(f"<{length}s", f"name of entry {i + 1}").split(b"\0", 1)[0].decode("utf-8", "replace")
        ncall, nval = take("<ii", f"sizes of entry {i + 1}")
        if nval < 1 or pos + 4 * nval > len(data):
            raise BadInputError(f"not an imatrix file: entry {name!r} claims {nval} values", path)
        sums = np.frombuffer(data, dtype="<f4", count=nval, offset=pos).astype(np.float32)
        pos += 4 * nval
        out.entries[name] = sums / np.float32(ncall) if ncall > 0 else sums
    if pos + 4 <= len(data):  # optional trailer: chunk count, then dataset name
        out.chunk_count = take("<i", "chunk count")
        if pos + 4 <= len(data):
            length = take("<i", "dataset length")
            if 0 < length <= len(data) - pos:
                out.datasets.append(data[pos:pos + length].split(b"\0", 1)[0].decode("utf-8", "replace"))
    return out


def write_imatrix(path: str | os.PathLike[str], sums: dict[str, np.ndarray], counts: dict[str, float],
                  dataset: str = "synthetic", chunk_count: int = 1, chunk_size: int = 512) -> None:
    """An imatrix file in llama-imatrix's GGUF layout (for tests and benchmarks: raw sums and call counts)."""
    import gguf

    w = gguf.GGUFWriter(os.fspath(path), "imatrix")  # gguf-py always names an architecture; llama.cpp ignores it
    w.add_string(Keys.General.TYPE, "imatrix")
    w.add_array(Keys.IMatrix.DATASETS, [dataset])
    w.add_uint32(Keys.IMatrix.CHUNK_COUNT, chunk_count)
    w.add_uint32(Keys.IMatrix.CHUNK_SIZE, chunk_size)
    for name, values in sums.items():
        w.add_tensor(name + _SUM2, np.asarray(values, dtype=np.float32).reshape(1, -1))
        w.add_tensor(name + _COUNTS, np.array([[counts[name]]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
