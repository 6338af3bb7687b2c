"""Bounded reader for GGUF v1-v3 headers: key/values and the tensor table, never the tensor data.

gguf-py's GGUFReader maps the whole file and trusts its counts; this reader checks every count and
length against the bytes left before it reads or allocates, so a crafted file fails fast and small.
Given the first shard of a split model (`split.count` > 1) it reads every shard and returns the whole
model (formats/shards.py), so every command that reads a model takes its first shard.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType, Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import NumberArray
from ggufkit.formats.consistency import check_consistency
from ggufkit.formats.cursor import Cursor
from ggufkit.formats.ggml_types import TensorInfo, tensor_nbytes

MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_ARRAY_ITEMS = 1 << 24
MAX_KEY_BYTES = 1 << 16
MAX_NAME_BYTES = 1 << 10
MAX_DIMS = 4
MAX_NESTING = 3

_SCALARS: dict[GGUFValueType, tuple[str, int]] = {
    GGUFValueType.UINT8: ("<B", 1), GGUFValueType.INT8: ("<b", 1),
    GGUFValueType.UINT16: ("<H", 2), GGUFValueType.INT16: ("<h", 2),
    GGUFValueType.UINT32: ("<I", 4), GGUFValueType.INT32: ("<i", 4),
    GGUFValueType.FLOAT32: ("<f", 4), GGUFValueType.BOOL: ("<?", 1),
    GGUFValueType.UINT64: ("<Q", 8), GGUFValueType.INT64: ("<q", 8),
    GGUFValueType.FLOAT64: ("<d", 8),
}


@dataclass
class GgufFile:
    path: str
    version: int
    kv: dict[str, Any] = field(default_factory=dict)
    kv_types: dict[str, tuple[GGUFValueType, GGUFValueType | None]] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    alignment: int = GGUF_DEFAULT_ALIGNMENT
    data_offset: int = 0
    file_size: int = 0  # a split model: all its shards together
    shards: list[GgufFile] = field(default_factory=list)  # a split model's files, first to last; else empty

    @property
    def label(self) -> str:
        return f"GGUF v{self.version}"

    @property
    def architecture(self) -> str | None:
        arch = self.kv.get(Keys.General.ARCHITECTURE)
        return arch if isinstance(arch, str) else None

    def arch_kv(self, key_template: str, default: Any = None) -> Any:
        """Value of an architecture-scoped key such as Keys.LLM.CONTEXT_LENGTH ("{arch}.context_length")."""
        return self.kv.get(key_template.format(arch=self.architecture), default)

    @property
    def split_count(self) -> int:
        """`split.count` as llama.cpp reads it (a model in more than one file when > 1), else 0."""
        n = self.kv.get(Keys.Split.LLM_KV_SPLIT_COUNT, 0)
        return n if isinstance(n, int) and not isinstance(n, bool) else 0

    def files(self) -> list[GgufFile]:
        """The files holding the tensors: each shard of a split model, else this one."""
        return self.shards or [self]

    def placed(self) -> Iterator[tuple[str, TensorInfo]]:
        """Every tensor with the path of the file holding its data (offsets are within that file)."""
        for f in self.files():
            for t in f.tensors:
                yield f.path, t


def shortest_f32(v: float) -> float:
    """The shortest decimal that is the same f32, so 1e-05 reads as 1e-05, not 9.999999747378752e-06 (what
    numpy's str(np.float32(v)) gives; Python's %g rounds the exact value, so the first length that comes back
    to the same f32 is that decimal)."""
    for digits in range(1, 10):
        x = float(f"{v:.{digits}g}")
        try:
            if _F32.unpack(_F32.pack(x))[0] == v:
                return x
        except OverflowError:  # rounded up past the largest f32
            continue
    return v  # NaN


_F32 = struct.Struct("<f")


def read_gguf(path: str | os.PathLike[str], whole: bool = True) -> GgufFile:
    """One GGUF file; the first shard of a split model gives the whole model (`whole=False`: that file alone)."""
    g = _read_one(path)
    if whole and g.split_count > 1:
        from ggufkit.formats.shards import join

        return join(g)
    return g


def _read_one(path: str | os.PathLike[str]) -> GgufFile:
    with Cursor.open(path) as cur:
        path = cur.path
        if cur.u32("magic") != GGUF_MAGIC:
            raise BadInputError("not a GGUF file (bad magic)", path)
        version = cur.u32("version")
        if version not in (1, 2, 3):
            if struct.unpack("<I", struct.pack(">I", version))[0] in (1, 2, 3):
                raise BadInputError("big-endian GGUF files are not supported", path)
            raise BadInputError(f"unknown GGUF version {version}", path)
        return _Parser(cur, version).parse()


class _Parser:
    def __init__(self, cur: Cursor, version: int):
        self.cur = cur
        self.version = version
        self.wide = version >= 2  # v1 stored counts and lengths as u32

    def n(self, what: str) -> int:
        return self.cur.u64(what) if self.wide else self.cur.u32(what)

    def string(self, what: str, limit: int | None = None) -> str:
        n = self.n(f"length of {what}")
        if limit is not None and n > limit:
            raise self.cur.fail(f"{what} claims {n} bytes")
        return self.cur.read(n, what).decode("utf-8", "surrogateescape")

    def parse(self) -> GgufFile:
        cur = self.cur
        n_tensors = cur.count(self.n("tensor count"), 4 + 4 + 8 + 4 + 8, "tensor count", MAX_TENSORS)
        n_kv = cur.count(self.n("key/value count"), 4 + 4 + 1, "key/value count", MAX_KV)
        g = GgufFile(cur.path, self.version, file_size=cur.size)
        for i in range(n_kv):
            key = self.string(f"key #{i}", MAX_KEY_BYTES)
            if key in g.kv:
                raise cur.fail(f"duplicate key {key!r}")
            vtype = self.value_type(f"type of {key!r}")
            sub = None
            if vtype == GGUFValueType.ARRAY:
                g.kv[key], sub = self.array(key, 1)
            else:
                g.kv[key] = self.value(vtype, key)
            g.kv_types[key] = (vtype, sub)
        g.alignment = self.alignment(g)
        raw = [self.tensor_info(i) for i in range(n_tensors)]
        g.data_offset = cur.pos + (-cur.pos % g.alignment)
        g.tensors = self.place(raw, g)
        if g.split_count <= 1:  # a shard holds part of the tensors: the whole model is checked when joined
            check_consistency(g)
        return g

    def value_type(self, what: str) -> GGUFValueType:
        t = self.cur.u32(what)
        try:
            return GGUFValueType(t)
        except ValueError:
            raise self.cur.fail(f"{what} is {t}, not a GGUF value type") from None

    def value(self, vtype: GGUFValueType, key: str) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string(f"value of {key!r}")
        fmt, size = _SCALARS[vtype]
        v = struct.unpack(fmt, self.cur.read(size, f"value of {key!r}"))[0]
        return shortest_f32(v) if vtype == GGUFValueType.FLOAT32 else v

    def array(self, key: str, depth: int) -> tuple[Any, GGUFValueType]:
        cur = self.cur
        sub = self.value_type(f"element type of {key!r}")
        count = self.n(f"length of {key!r}")
        if count > MAX_ARRAY_ITEMS:
            raise cur.fail(f"array {key!r} claims {count} items")
        if sub in _SCALARS:
            fmt, size = _SCALARS[sub]
            cur.count(count, size, f"length of {key!r}")
            return NumberArray(cur.read(count * size, f"array {key!r}"), fmt), sub
        cur.count(count, 8 if self.wide else 4, f"length of {key!r}")
        if sub == GGUFValueType.STRING:
            return cur.strings(count, 8 if self.wide else 4, f"item of {key!r}"), sub
        if depth >= MAX_NESTING:
            raise cur.fail(f"array {key!r} is nested too deeply")
        return [self.array(key, depth + 1)[0] for _ in range(count)], sub

    def alignment(self, g: GgufFile) -> int:
        a = g.kv.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(a, int) or isinstance(a, bool) or a <= 0 or a & (a - 1) or a > 1 << 20:
            raise BadInputError(f"general.alignment {a!r} is not a power of two", g.path)
        return a

    def tensor_info(self, i: int) -> tuple[str, int, tuple[int, ...], int]:
        cur = self.cur
        name = self.string(f"name of tensor #{i}", MAX_NAME_BYTES)
        n_dims = cur.u32(f"n_dims of {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(self.n(f"dimension of {name!r}") for _ in range(n_dims))
        ggml_type = cur.u32(f"type of {name!r}")
        offset = cur.u64(f"offset of {name!r}")
        return name, ggml_type, shape, offset

    def place(self, raw: list[tuple[str, int, tuple[int, ...], int]], g: GgufFile) -> list[TensorInfo]:
        tensors, seen = [], set()
        for name, ggml_type, shape, rel in raw:
            if name in seen:
                raise BadInputError(f"duplicate tensor {name!r}", g.path)
            seen.add(name)
            nbytes = tensor_nbytes(ggml_type, shape, g.path, name)
            if rel % g.alignment:
                raise BadInputError(f"tensor {name!r} data offset {rel} is not aligned to {g.alignment}", g.path)
            start = g.data_offset + rel
            if start + nbytes > g.file_size:
                raise BadInputError(
                    f"truncated or corrupt: tensor {name!r} data ends at byte {start + nbytes}, "
                    f"the file has {g.file_size}",
                    g.path,
                )
            tensors.append(TensorInfo(name, ggml_type, shape, start, nbytes))
        # llama.cpp wants the data packed in table order, each tensor at the next aligned offset
        expected = g.data_offset
        for t in tensors:
            if t.offset != expected:
                raise BadInputError(
                    f"tensor {t.name!r} data is at offset {t.offset - g.data_offset}, "
                    f"expected {expected - g.data_offset} (tensors must be packed in table order)", g.path)
            expected = t.offset + t.nbytes + (-(t.offset + t.nbytes - g.data_offset) % g.alignment)
        return tensors
