"""`edit`: set or remove a GGUF file's metadata; the header is written anew, the tensor data copied unchanged.

The output is a new file (or, --in-place, a new file beside the input renamed over it: never a half-edited
model); the data section moves by the kernel in one copy_file_range. The edited metadata passes the same
checks as any file the readers open (special token ids inside the vocabulary, ...) before anything is
written; keys that decide how the tensors are read are refused (keys.PROTECTED).
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gguf.constants import GGUFValueType, Keys

from ggufkit.converters.copy import copy_range, write_all
from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray, jsonable
from ggufkit.formats.consistency import check_consistency
from ggufkit.formats.detect import sniff
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.surgery.header import KvTypes, TensorEntry, encode_header, encode_value, pad, type_label
from ggufkit.surgery.keys import SPECIAL_TOKENS, known_type, parse_value, refusal


@dataclass
class Edits:
    """The edits as typed: KEY=VALUE, KEY, FILE|NAME, ROLE=ID|TEXT."""

    sets: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    chat_template: str | None = None  # the template's text, checked (runtime.templates.checked_source)
    special_tokens: list[str] = field(default_factory=list)


@dataclass
class EditReport:
    input: str
    output: str
    in_place: bool
    changes: list[dict[str, Any]]  # key, action ("set" | "remove"), type, old, new (long arrays shortened)
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Editor:
    def __init__(self, g: GgufFile):
        self.g = g
        self.kv = dict(g.kv)
        self.types = dict(g.kv_types)
        self.changes: list[dict[str, Any]] = []
        self.requested = 0  # edits asked for (a --set to the value already there changes nothing)

    def _allowed(self, key: str) -> None:
        why = refusal(key, self.g.architecture)
        if why:
            raise BadInputError(f"{key}: refused: {why}")

    def set(self, key: str, value: Any, types: KvTypes) -> None:
        self.requested += 1
        new = encode_value(key, value, types)
        if key in self.kv and encode_value(key, self.kv[key], self.types[key]) == new:
            return  # already so
        self.changes.append({"key": key, "action": "set", "type": type_label(types),
                             "old": jsonable(self.kv[key]) if key in self.kv else None, "new": jsonable(value)})
        self.kv[key], self.types[key] = value, types  # an existing key keeps its place

    def set_text(self, item: str) -> None:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BadInputError(f"--set wants KEY=VALUE, not {item!r}")
        self._allowed(key)
        self.set(key, *parse_value(key, text, self.types.get(key) or known_type(key, self.g.architecture)))

    def remove(self, key: str) -> None:
        self._allowed(key)
        if key not in self.kv:
            raise BadInputError(f"--remove {key}: the file has no such key")
        self.requested += 1
        self.changes.append({"key": key, "action": "remove", "type": type_label(self.types[key]),
                             "old": jsonable(self.kv.pop(key)), "new": None})
        del self.types[key]

    def chat_template(self, source: str) -> None:
        """`source`: a template already checked in run's sandbox (runtime.templates.checked_source)."""
        self.set(Keys.Tokenizer.CHAT_TEMPLATE, source, (GGUFValueType.STRING, None))

    def special_token(self, item: str) -> None:
        role, eq, value = item.partition("=")
        key = SPECIAL_TOKENS.get(role.strip().lower())
        if not eq or key is None:
            raise BadInputError(f"--special-token wants ROLE=ID or ROLE=TEXT with ROLE one of "
                                f"{', '.join(SPECIAL_TOKENS)}, not {item!r}")
        tokens = self.kv.get(Keys.Tokenizer.LIST)
        if not isinstance(tokens, (list, StringArray)):
            raise BadInputError("--special-token: the file has no vocabulary (tokenizer.ggml.tokens)")
        if re.fullmatch(r"\d+", value.strip()):
            tid = int(value)
            if tid >= len(tokens):
                raise BadInputError(f"--special-token {role}: id {tid} is outside the vocabulary of {len(tokens)} tokens")
        else:
            try:
                tid = tokens.index(value)
            except ValueError:
                raise BadInputError(f"--special-token {role}: no token {value!r} in the vocabulary") from None
        self.set(key, tid, self.types.get(key) or known_type(key, None) or (GGUFValueType.UINT32, None))


def edit(src: Path, edits: Edits, out: Path | None = None, in_place: bool = False, force: bool = False) -> EditReport:
    started = time.perf_counter()
    if (out is None) != in_place:
        raise BadInputError("give -o OUT or --in-place (one of them)")
    if sniff(src) != "gguf":
        raise BadInputError("not a GGUF file: convert it first (`ggufkit convert`), then edit the GGUF", src)
    g = read_gguf(src)
    first = g.files()[0]  # a split model's metadata is all in its first shard
    if g.shards and not in_place:
        raise BadInputError("a split model: edit its first shard --in-place (only it holds the metadata), "
                            "or merge it first", src)
    e = _Editor(g)
    for key in edits.removes:
        e.remove(key)
    for item in edits.sets:
        e.set_text(item)
    if edits.chat_template is not None:
        e.chat_template(edits.chat_template)
    for item in edits.special_tokens:
        e.special_token(item)
    if not e.requested:
        raise BadInputError("nothing to change: give --set, --remove, --chat-template or --special-token")
    check_consistency(replace(g, kv=e.kv, kv_types=e.types))  # what any reader would refuse, refused now
    header = encode_header(e.kv, e.types, (TensorEntry(t.name, t.shape, t.ggml_type, t.nbytes) for t in first.tensors),
                           first.alignment)
    target = Path(os.path.realpath(src)) if in_place else out
    assert target is not None
    if not in_place:
        check_output(target, [Path(f.path) for f in g.files()], force)
    with atomic_output(target) as tmp:
        size = _write(tmp, header, first)
        if in_place:
            os.chmod(tmp, stat.S_IMODE(os.stat(src).st_mode))  # the file keeps its permissions
    return EditReport(str(src), str(target), in_place, e.changes, size, time.perf_counter() - started)


def _write(tmp: Path, header: bytes, g: GgufFile) -> int:
    """The new header, then the data section as it is (tensors and the padding between them) in one copy."""
    end = g.tensors[-1].offset + g.tensors[-1].nbytes if g.tensors else g.data_offset
    span = end - g.data_offset
    fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        with open(g.path, "rb") as f:
            write_all(fd, header)
            copy_range(f.fileno(), fd, g.data_offset, span)
            write_all(fd, bytes(pad(span, g.alignment)))
    finally:
        os.close(fd)
    return len(header) + span + pad(span, g.alignment)
