"""A little-endian reader that never reads, seeks or allocates past the end of its file."""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")


class Cursor:
    """Reads a file front to back; every length is checked against the bytes left first."""

    def __init__(self, fp: BinaryIO, size: int, path: str):
        self.fp = fp
        self.size = size
        self.path = path
        self.pos = fp.tell()

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | os.PathLike[str]) -> Iterator[Cursor]:
        """The readers' shared preamble: open, size from fstat, one clear error if the file can't be opened."""
        path = os.fspath(path)
        try:
            fp = open(path, "rb")
        except OSError as e:
            raise BadInputError(f"cannot open: {e.strerror}", path) from None
        with fp:
            yield cls(fp, os.fstat(fp.fileno()).st_size, path)

    @property
    def left(self) -> int:
        return self.size - self.pos

    def fail(self, what: str) -> BadInputError:
        return BadInputError(f"{what} (at byte {self.pos})", self.path)

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise self.fail(f"truncated or corrupt: {what} needs {n} bytes, {self.left} left")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.fp.read(n)
        if len(data) != n:
            raise self.fail(f"truncated: {what}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n
        self.fp.seek(self.pos)

    def seek(self, pos: int, what: str) -> None:
        if not 0 <= pos <= self.size:
            raise self.fail(f"{what} points outside the file")
        self.pos = pos
        self.fp.seek(pos)

    def u32(self, what: str) -> int:
        return _U32.unpack(self.read(4, what))[0]

    def i32(self, what: str) -> int:
        return _I32.unpack(self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.read(8, what))[0]

    def f32(self, what: str) -> float:
        return _F32.unpack(self.read(4, what))[0]

    def strings(self, count: int, width: int, what: str) -> StringArray:
        """`count` strings, each a `width`-byte length and its bytes (a GGUF array of strings, e.g. a vocabulary
        of 250k tokens): each length checked against the bytes left, as `read` does, in one walk over the mapped
        file; the bytes are kept and decoded only when read (formats/arrays.py)."""
        unpack = (_U64 if width == 8 else _U32).unpack_from
        start = pos = self.pos
        end = self.size
        try:
            mm = mmap.mmap(self.fp.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise self.fail(f"cannot map the file to read {what}: {e}") from None
        with mm:
            end = min(end, len(mm))  # a file cut short since it was opened: past its end would be SIGBUS
            for _ in range(count):
                if width > end - pos:
                    self.pos = pos
                    raise self.fail(f"truncated or corrupt: length of {what} needs {width} bytes, {end - pos} left")
                n = unpack(mm, pos)[0]
                pos += width
                if n > end - pos:
                    self.pos = pos
                    raise self.fail(f"truncated or corrupt: {what} needs {n} bytes, {end - pos} left")
                pos += n
            raw = mm[start:pos]
        self.seek(pos, what)
        return StringArray(raw, count, width)

    def count(self, n: int, min_item_bytes: int, what: str, limit: int | None = None) -> int:
        """Check that `n` items of at least `min_item_bytes` each can fit in what is left."""
        if limit is not None and n > limit:
            raise self.fail(f"{what} is {n}, more than the limit of {limit}")
        if n * min_item_bytes > self.left:
            raise self.fail(f"{what} is {n}, more than the {self.left} bytes left can hold")
        return n
