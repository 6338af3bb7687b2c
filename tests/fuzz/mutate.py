"""Mutations of valid model files: bit flips, byte noise, truncations, and field-targeted values.

Field targets are found by parsing the seed once with the project's own reader while recording
where every field it reads lies, so counts, lengths, dimensions, types and offsets get boundary
values, the kind of edit that breaks a parser that trusts them.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

from ggufkit.formats import cursor
from ggufkit.formats.detect import open_model, sniff
from ggufkit.formats.gguf_file import read_gguf

BOUNDARY = (0, 1, 2, 3, 7, 31, 32, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
            1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)


@dataclass(frozen=True)
class Field:
    offset: int
    size: int
    what: str


def fields_of(path: Path, imatrix: bool = False) -> list[Field]:
    """Every integer field the reader reads from `path` (seed files are valid, so it reads them all); the
    importance-matrix reader's for an imatrix file."""
    found: list[Field] = []
    original = cursor.Cursor.read

    def recording_read(self: cursor.Cursor, n: int, what: str) -> bytes:
        if n in (4, 8):
            found.append(Field(self.pos, n, what))
        return original(self, n, what)

    def recording_strings(self: cursor.Cursor, count: int, width: int, what: str) -> list[str]:
        # item by item through `read`, so each string's length is a field too
        unpack = {4: "<I", 8: "<Q"}[width]
        return [self.read(struct.unpack(unpack, self.read(width, what))[0], what).decode("utf-8", "surrogateescape")
                for _ in range(count)]

    strings = cursor.Cursor.strings
    cursor.Cursor.read = recording_read  # type: ignore[method-assign]
    cursor.Cursor.strings = recording_strings  # type: ignore[method-assign]
    try:
        if imatrix:
            from ggufkit.imatrix.files import read_matrix

            read_matrix(path)
        elif sniff(path) == "gguf":
            read_gguf(path, whole=False)  # this file's fields only (a shard's siblings are other files)
        else:
            open_model(path)
    finally:
        cursor.Cursor.read = original  # type: ignore[method-assign]
        cursor.Cursor.strings = strings  # type: ignore[method-assign]
    return found


def header_end(fields: list[Field], size: int) -> int:
    return min(size, max((f.offset + f.size for f in fields), default=64))


def mutate(data: bytes, fields: list[Field], rng: random.Random) -> tuple[bytes, str]:
    """One mutant of `data` and a short description of what was done."""
    kind = rng.choice(("field", "field", "field", "bits", "bytes", "truncate", "header-bits"))
    b = bytearray(data)
    if kind == "field" and fields:
        f = rng.choice(fields)
        value = rng.choice(BOUNDARY) if rng.random() < 0.8 else rng.getrandbits(8 * f.size)
        value &= (1 << (8 * f.size)) - 1
        b[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")
        return bytes(b), f"{f.what} @{f.offset} = {value}"
    if kind == "truncate":
        n = rng.randrange(len(data))
        return data[:n], f"truncated to {n}"
    # tensor data is most of a file and parsers never look at it: aim most edits at the header
    span = len(data) if rng.random() < 0.1 else header_end(fields, len(data))
    if kind == "bytes":
        at = rng.randrange(span)
        n = rng.randint(1, 16)
        b[at : at + n] = bytes(rng.getrandbits(8) for _ in range(n))[: len(b) - at]
        return bytes(b), f"{n} random bytes @{at}"
    flips = rng.randint(1, 8)
    for _ in range(flips):
        at = rng.randrange(span)
        b[at] ^= 1 << rng.randrange(8)
    return bytes(b), f"{flips} bit flips in the first {span} bytes"
