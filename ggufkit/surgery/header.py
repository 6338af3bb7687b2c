"""A GGUF v3 header (key/values, tensor table, padding) as bytes, laid out as llama.cpp's gguf.cpp writes it.

split, merge and edit keep every value's stored type and the key order they are given, and a tensor
table whose offsets follow from the sizes: what gguf.cpp's writer does, so a split or merge comes out
byte for byte as `llama-gguf-split`'s. gguf-py's GGUFWriter is not used here: it adds
general.architecture to every file itself (a shard after the first holds only the split keys), refuses
empty arrays and packs arrays item by item.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gguf.constants import GGUF_MAGIC, GGUF_VERSION, GGUFValueType

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import NumberArray, StringArray

KvTypes = tuple[GGUFValueType, GGUFValueType | None]  # (type, array item type)

SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table: its data offset follows from the rows before it."""

    name: str
    shape: tuple[int, ...]  # ne0 first
    ggml_type: int
    nbytes: int



def type_label(types: KvTypes) -> str:
    """`uint32`, `string`, `array[string]`: a value's stored type as edit and diff show it."""
    vtype, sub = types
    return f"array[{sub.name.lower()}]" if vtype == GGUFValueType.ARRAY and sub is not None else vtype.name.lower()


def pad(n: int, alignment: int) -> int:
    return -n % alignment


def encode_string(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")  # the bytes the reader found, even where not UTF-8
    return struct.pack("<Q", len(raw)) + raw


def encode_value(key: str, value: Any, types: KvTypes) -> bytes:
    """A key/value record's value part: its type, then the value (arrays: item type, count, items)."""
    vtype, sub = types
    out = struct.pack("<I", vtype)
    if vtype == GGUFValueType.ARRAY:
        if sub is None or sub == GGUFValueType.ARRAY:
            raise BadInputError(f"{key}: an array of arrays, which llama.cpp cannot read")
        if sub == GGUFValueType.STRING:  # a vocabulary: 250k strings, kept as the reader found them
            items = StringArray.of(value)
            return out + struct.pack("<IQ", sub, len(items)) + items.encoded()
        fmt = SCALAR_FORMATS[sub]
        if isinstance(value, NumberArray) and value.fmt == fmt:  # as read: the stored bytes themselves
            return out + struct.pack("<IQ", sub, len(value)) + value.raw
        import numpy as np

        items = np.asarray(value, dtype=np.dtype(fmt))
        return out + struct.pack("<IQ", sub, len(items)) + items.tobytes()
    if vtype == GGUFValueType.STRING:
        return out + encode_string(value)
    try:
        return out + struct.pack(SCALAR_FORMATS[vtype], value)
    except (struct.error, KeyError):
        raise BadInputError(f"{key}: {value!r} is not a {vtype.name.lower()}") from None


def encode_header(kv: dict[str, Any], kv_types: dict[str, KvTypes], tensors: Iterable[TensorEntry],
                  alignment: int) -> bytes:
    """Magic, version, counts, key/values, tensor table, zeros up to `alignment`: where the data begins."""
    tensors = list(tensors)
    parts = [struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(tensors), len(kv))]
    for key, value in kv.items():
        parts.append(encode_string(key) + encode_value(key, value, kv_types[key]))
    offset = 0
    for t in tensors:
        dims = list(t.shape)
        while len(dims) > 1 and dims[-1] == 1:  # ggml_n_dims: trailing dimensions of 1 are not written
            dims.pop()
        parts.append(encode_string(t.name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, t.ggml_type, offset))
        offset += t.nbytes + pad(t.nbytes, alignment)
    head = b"".join(parts)
    return head + b"\0" * pad(len(head), alignment)
