"""A GGUF serializer that writes whatever it is given, valid or not, for crafting hostile files."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import GGUFValueType as V

from ggufkit.formats.gguf_file import read_gguf

_FMT = {V.UINT8: "B", V.INT8: "b", V.UINT16: "H", V.INT16: "h", V.UINT32: "I", V.INT32: "i",
        V.FLOAT32: "f", V.BOOL: "?", V.UINT64: "Q", V.INT64: "q", V.FLOAT64: "d"}


@dataclass
class RawTensor:
    name: str
    dims: list[int]
    type: int
    offset: int  # relative to the data section


@dataclass
class RawGguf:
    kv: list[tuple[str, int, int | None, Any]]  # key, type, array item type, value
    tensors: list[RawTensor]
    data: bytes
    version: int = 3
    alignment: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RawGguf:
        g = read_gguf(path)
        kv = []
        for key, value in g.kv.items():
            vtype, sub = g.kv_types[key]
            if hasattr(value, "tolist"):
                value = value.tolist()
            kv.append((key, int(vtype), None if sub is None else int(sub), value))
        blob = Path(path).read_bytes()
        tensors = [RawTensor(t.name, list(t.shape), t.ggml_type, t.offset - g.data_offset) for t in g.tensors]
        return cls(kv, tensors, blob[g.data_offset:], g.version, g.alignment)

    def set(self, key: str, vtype: int, value: Any, sub: int | None = None) -> None:
        self.kv = [e for e in self.kv if e[0] != key] + [(key, vtype, sub, value)]

    def get(self, key: str) -> Any:
        return next(e[3] for e in self.kv if e[0] == key)

    def to_bytes(self) -> bytes:
        n = "Q" if self.version >= 2 else "I"
        out = bytearray(b"GGUF" + struct.pack(f"<I{n}{n}", self.version, len(self.tensors), len(self.kv)))
        for key, vtype, sub, value in self.kv:
            out += self._str(key) + struct.pack("<I", vtype) + self._val(vtype, sub, value)
        for t in self.tensors:
            out += self._str(t.name) + struct.pack("<I", len(t.dims))
            out += b"".join(struct.pack(f"<{n}", d) for d in t.dims)
            out += struct.pack("<IQ", t.type, t.offset)
        out += b"\0" * (-len(out) % self.alignment)
        return bytes(out) + self.data

    def write(self, path: Path) -> Path:
        path.write_bytes(self.to_bytes())
        return path

    def _str(self, s: str | bytes) -> bytes:
        raw = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
        return struct.pack("<Q" if self.version >= 2 else "<I", len(raw)) + raw

    def _val(self, vtype: int, sub: int | None, value: Any) -> bytes:
        if vtype == V.STRING:
            return self._str(value)
        if vtype == V.ARRAY and isinstance(value, bytes):
            return value  # pre-encoded element type, count and items
        if vtype == V.ARRAY:
            assert sub is not None
            head = struct.pack("<I", sub) + struct.pack("<Q" if self.version >= 2 else "<I", len(value))
            if sub in _FMT:
                return head + struct.pack(f"<{len(value)}{_FMT[sub]}", *value)
            return head + b"".join(self._val(sub, None, v) for v in value)
        return struct.pack(f"<{_FMT[vtype]}", value)
