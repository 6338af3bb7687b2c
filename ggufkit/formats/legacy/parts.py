"""Multi-part models (`ggml-model-q4_0.bin`, `.bin.1`, …) of early 2023, joined into whole tensors, and
reading the rows of a tensor whatever the number of parts.

The first converters wrote 13B and larger LLaMA models as one file per original checkpoint shard: every
part repeats the header and vocabulary and holds a slice of every 2-D tensor, cut along the dimension the
shard was cut on (the family's `split_axis`: tok_embeddings, wo and w2 along ne0, the rest along ne1);
1-D norms are whole in every part. Pre-GGUF llama.cpp found the part count as n_embd divided by the
width of the first part's tok_embeddings, and opened `NAME.1`, `NAME.2`, … beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ggufkit.errors import BadInputError
from ggufkit.formats.ggml_types import TensorInfo
from ggufkit.formats.legacy import blocks
from ggufkit.formats.legacy.ggml import LegacyModel

MAX_PARTS = 64
COMPARE_PIECE = 1 << 20  # bytes of an unsplit tensor compared at a time


def part_path(first: str, index: int) -> str:
    return first if index == 0 else f"{first}.{index}"


def expected_parts(m: LegacyModel) -> int:
    """How many parts the first part says the model has (1 for every single-file model)."""
    if m.family.split_axis is None or "n_embd" not in m.hparams:
        return 1
    emb = next((t for t in m.tensors if m.family.split_axis(t.name, len(t.shape)) == 0), None)
    n_embd = int(m.hparams["n_embd"])
    if emb is None or emb.shape[0] >= n_embd or n_embd % emb.shape[0]:
        return 1
    return n_embd // emb.shape[0]


def join(first: LegacyModel, read_part: Callable[[str], LegacyModel]) -> LegacyModel:
    """`first` with its other parts read and its tensors made whole; `first` itself if it has none."""
    n = expected_parts(first)
    later = _later_part(first.path)
    if n > 1 and later is not None:
        base, index = later
        missing = "" if os.path.exists(base) else ", which is missing"
        raise BadInputError(f"this is part {index + 1} of a multi-part model, not its first: name the first part, "
                            f"{os.path.basename(base)}{missing}", first.path)
    if n == 1:
        if os.path.exists(part_path(first.path, 1)):
            raise BadInputError(f"{part_path(first.path, 1)} lies beside it, but this file holds a whole model "
                                "(its tensors are not split): remove or rename the stray part", first.path)
        return first
    if n > MAX_PARTS:
        raise BadInputError(f"claims {n} parts, more than {MAX_PARTS}", first.path)
    parts = [first]
    for i in range(1, n):
        p = part_path(first.path, i)
        if not os.path.exists(p):
            raise BadInputError(f"part {i + 1} of {n} ({os.path.basename(p)}) is missing: a multi-part model "
                                f"needs every part beside the first", first.path)
        parts.append(read_part(p))
    if os.path.exists(part_path(first.path, n)):
        raise BadInputError(f"{os.path.basename(part_path(first.path, n))} lies beside a model of {n} parts: "
                            "parts of different models are mixed", first.path)
    for p in parts[1:]:
        _check_same_model(first, p)
        _check_same_copies(first, p)
    tensors = []
    for k, t in enumerate(first.tensors):
        axis = first.family.split_axis(t.name, len(t.shape))
        pieces = [p.tensors[k] for p in parts]
        if axis is None:
            tensors.append(t)
            continue
        shape = list(t.shape)
        shape[axis] *= n
        tensors.append(replace(t, shape=tuple(shape), nbytes=t.nbytes * n))
    whole = replace(first, tensors=tensors, parts=parts, file_size=sum(p.file_size for p in parts))
    whole._by_name = {}
    return whole


def _check_same_model(a: LegacyModel, b: LegacyModel) -> None:
    what = None
    if (a.container, a.version, a.family.name) != (b.container, b.version, b.family.name):
        what = f"it is {b.label}, the first part {a.label}"
    elif a.hparams != b.hparams:
        what = "its hparams differ from the first part's"
    elif a.vocab != b.vocab:
        what = "its vocabulary differs from the first part's"
    elif [(t.name, t.ggml_type, t.shape) for t in a.tensors] != [(t.name, t.ggml_type, t.shape) for t in b.tensors]:
        what = "its tensors differ in name, type or shape from the first part's"
    if what:
        raise BadInputError(f"not a part of the same model: {what}", b.path)


def _later_part(path: str) -> tuple[str, int] | None:
    """(the first part's path, this part's index) if `path` is named as a later part (NAME.1, NAME.2, ...)."""
    base, dot, index = path.rpartition(".")
    if dot and index.isdigit() and 1 <= int(index) < MAX_PARTS and base:
        return base, int(index)
    return None


def _check_same_copies(a: LegacyModel, b: LegacyModel) -> None:
    """The parts of one model hold the same copy of every tensor that is not split (LLaMA's norms); a part
    of another model of the same shape holds its own model's. Read a piece at a time: they are small."""
    with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
        for ta, tb in zip(a.tensors, b.tensors):
            if a.family.split_axis(ta.name, len(ta.shape)) is not None:
                continue
            for at in range(0, ta.nbytes, COMPARE_PIECE):
                n = min(COMPARE_PIECE, ta.nbytes - at)
                if os.pread(fa.fileno(), n, ta.offset + at) != os.pread(fb.fileno(), n, tb.offset + at):
                    raise BadInputError(f"not a part of the same model: its {ta.name} differs from the first part's "
                                        f"({os.path.basename(a.path)}), and every part of one model holds the same "
                                        "copy of it", b.path)


class RowReader:
    """Whole rows of a tensor's stored blocks, as (rows, row bytes) uint8 arrays, from one or many parts."""

    def __init__(self, model: LegacyModel):
        self.model = model
        self._fds: dict[str, int] = {}

    def __enter__(self) -> RowReader:
        for p in self.model.parts or [self.model]:
            self._fds[p.path] = os.open(p.path, os.O_RDONLY)
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def geometry(self, t: TensorInfo) -> tuple[int, int]:
        """(number of rows, bytes per row) of the whole tensor."""
        lay = blocks.layout(self.model.qversion, t.ggml_type)
        assert lay is not None
        row = t.shape[0] // lay.block * lay.nbytes
        return t.nbytes // row, row

    def fd(self) -> int:
        """The single file's descriptor (for kernel copies of single-part models)."""
        return self._fds[self.model.path]

    def ranges(self, index: int) -> list[tuple[int, int, int]] | None:
        """The tensor's bytes as (file descriptor, offset, bytes) runs that follow each other in the whole
        tensor (one per file: the whole model's, or each part's run of rows); None where the parts hold a
        slice of every row, which must be interleaved row by row."""
        t = self.model.tensors[index]
        parts = self.model.parts
        axis = self.model.family.split_axis(t.name, len(t.shape)) if parts else None
        if not parts or axis is None:
            return [(self._fds[self.model.path], t.offset, t.nbytes)]
        if axis == 0:
            return None
        return [(self._fds[p.path], p.tensors[index].offset, p.tensors[index].nbytes) for p in parts]

    def rows(self, index: int, start: int, count: int) -> np.ndarray:
        """Rows [start, start + count) of tensor number `index` of the model."""
        t = self.model.tensors[index]
        n_rows, row = self.geometry(t)
        parts = self.model.parts
        if not parts or self.model.family.split_axis(t.name, len(t.shape)) is None:
            return self._read(self.model.path, t.offset + start * row, count, row)
        pieces = [p.tensors[index] for p in parts]
        if self.model.family.split_axis(t.name, len(t.shape)) == 0:  # every part holds a slice of each row
            w = row // len(parts)
            return np.concatenate([self._read(p.path, pc.offset + start * w, count, w)
                                   for p, pc in zip(parts, pieces)], axis=1)
        per = n_rows // len(parts)  # rows split among the parts in order
        out = []
        while count > 0:
            k, r = divmod(start, per)
            n = min(count, per - r)
            out.append(self._read(parts[k].path, pieces[k].offset + r * row, n, row))
            start, count = start + n, count - n
        return np.concatenate(out, axis=0)

    def _read(self, path: str, offset: int, count: int, row: int) -> np.ndarray:
        data = os.pread(self._fds[path], count * row, offset)
        if len(data) != count * row:
            raise BadInputError("file changed while being read (shorter than its header says)", path)
        return np.frombuffer(data, np.uint8).reshape(count, row)
