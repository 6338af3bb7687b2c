"""GGUF arrays kept as their stored bytes, decoded on first use.

A vocabulary is 50k-250k strings and its merges as many again: decoding them all took longer than the rest
of reading a header, and split, merge and edit only copy them. The reader checks every length as it walks
a string array (bounded, as everywhere), keeps the bytes, and the text is decoded only when something
reads it. Arrays of numbers (token scores and types) become numpy arrays only when read, so that a command
that only reads and writes headers never imports numpy (0.08 s).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import numpy as np

_WIDTHS = {4: struct.Struct("<I"), 8: struct.Struct("<Q")}  # GGUF v1 stored lengths as u32, v2 on as u64


class StringArray(Sequence[str]):
    """`count` strings as stored: each a `width`-byte little-endian length, then its UTF-8 bytes."""

    __slots__ = ("raw", "width", "_count", "_items", "_repeat")

    def __init__(self, raw: bytes, count: int, width: int = 8):
        self.raw, self.width, self._count = raw, width, count
        self._items: list[str] | None = None
        self._repeat: int | None = None  # first_c_repeat's answer (-1: none), once asked

    @classmethod
    def of(cls, items: Sequence[str]) -> StringArray:
        """Encoded as GGUF v3 stores them (u64 lengths)."""
        if isinstance(items, StringArray):
            return items
        pack, parts = _WIDTHS[8].pack, []
        for text in items:
            raw = text.encode("utf-8", "surrogateescape")  # the bytes a reader found, even where not UTF-8
            parts += (pack(len(raw)), raw)
        return cls(b"".join(parts), len(items))

    def encoded(self) -> bytes:
        """The items as GGUF v2/v3 write them (u64 lengths): the stored bytes themselves unless read from v1."""
        return self.raw if self.width == 8 else StringArray.of(self.items()).raw

    def items(self) -> list[str]:
        if self._items is None:
            unpack, width, raw = _WIDTHS[self.width].unpack_from, self.width, self.raw
            out, pos = [], 0
            for _ in range(self._count):  # the reader checked every length: no bounds to check again
                n = unpack(raw, pos)[0]
                pos += width
                out.append(raw[pos:pos + n].decode("utf-8", "surrogateescape"))
                pos += n
            self._items = out
        return self._items

    def first_c_repeat(self) -> int | None:
        """The index of the first item that equals an earlier one when both are read as C strings (cut at
        their first NUL byte, as llama.cpp reads token texts), or None: on the stored bytes, nothing decoded."""
        if self._repeat is None:
            unpack, width, raw = _WIDTHS[self.width].unpack_from, self.width, self.raw
            seen: set[bytes] = set()
            add, pos, self._repeat = seen.add, 0, -1
            for i in range(self._count):
                n = unpack(raw, pos)[0]
                pos += width
                text = raw[pos:pos + n]
                pos += n
                if 0 in text:
                    text = text.split(b"\0", 1)[0]
                if text in seen:
                    self._repeat = i
                    break
                add(text)
        return None if self._repeat < 0 else self._repeat

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self.items()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.items())

    def __contains__(self, text: object) -> bool:
        return text in self.items()

    def index(self, text: Any, start: int = 0, stop: int = 2**63) -> int:
        return self.items().index(text, start, stop)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StringArray):
            return self._count == other._count and self.encoded() == other.encoded()
        if isinstance(other, list):
            return self.items() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable as a list is

    def __repr__(self) -> str:
        return f"StringArray({self._count} items)"


class NumberArray(Sequence[Any]):
    """Little-endian numbers of one type as stored (`fmt`: its struct format, e.g. "<i"); as a numpy array
    (`numpy()`, np.asarray) on first use."""

    __slots__ = ("raw", "fmt", "_array")

    def __init__(self, raw: bytes, fmt: str):
        self.raw, self.fmt = raw, fmt
        self._array: np.ndarray | None = None

    def numpy(self) -> np.ndarray:
        if self._array is None:
            import numpy as np

            self._array = np.frombuffer(self.raw, dtype=np.dtype(self.fmt)).copy()
        return self._array

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def tolist(self) -> list[Any]:
        return self.numpy().tolist()

    def __len__(self) -> int:
        return len(self.raw) // struct.calcsize(self.fmt)

    def __getitem__(self, i: Any) -> Any:
        return self.numpy()[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.numpy())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NumberArray):
            return self.fmt == other.fmt and self.raw == other.raw
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NumberArray({len(self)} x {self.fmt})"


ARRAY_PREVIEW = 8


def jsonable(v: Any) -> Any:
    """A value for JSON: arrays longer than ARRAY_PREVIEW as their length and first items, text as valid UTF-8."""
    numpy_value = type(v).__module__ == "numpy"  # checked by name: numpy is imported only where it is used
    if numpy_value and not getattr(v, "ndim", 0):
        return v.item()
    if numpy_value or isinstance(v, (list, StringArray, NumberArray)):
        head = v[:ARRAY_PREVIEW]
        items = [jsonable(x) for x in (head if isinstance(head, list) else head.tolist())]
        return items if len(v) <= ARRAY_PREVIEW else {"length": len(v), "head": items}
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return v
