"""Reader for the ggml containers before GGUF: GGML (unversioned), GGMF v1, GGJT v1-v3, and the
containers other programs derived from them: ggllm.cpp's GGCC (ggcc.py) and rwkv.cpp's (rwkv.py).

Layout (little-endian): magic, version (not in GGML), the family's hparams, n_vocab vocabulary entries
(u32 length, bytes, then an f32 score where the container or family has them), then tensor records to
the end of the file: u32 n_dims, u32 name_len, u32 type, dims (ne0 first), name, zero padding to 32
bytes (GGJT only), data. The ggml examples' families put an i32 count before the vocabulary
(Family.vocab_count). Block sizes depend on the file's quantization version (see blocks.py), so a
tensor's size is computed with its own era's layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from gguf.constants import GGUF_MAGIC

from ggufkit.errors import BadInputError
from ggufkit.families import for_container
from ggufkit.families.base import Family
from ggufkit.formats.cursor import Cursor
from ggufkit.formats.ggml_types import TensorInfo, blocks_nbytes
from ggufkit.formats.legacy import blocks, ggcc, rwkv


@dataclass(frozen=True)
class Container:
    name: str
    magic: int
    versions: tuple[int | None, ...]
    scores: bool  # vocabulary entries carry an f32 score
    alignment: int  # tensor data starts at a multiple of this (1: packed)


CONTAINERS = {c.magic: c for c in (
    Container("GGML", 0x67676D6C, (None,), scores=False, alignment=1),
    Container("GGMF", 0x67676D66, (1,), scores=True, alignment=1),
    Container("GGJT", 0x67676A74, (1, 2, 3), scores=True, alignment=32),
    Container("GGCC", ggcc.MAGIC, ggcc.VERSIONS, scores=True, alignment=32),
)}
# rwkv.cpp reused the 'ggmf' magic: its files are told from GGMF v1 by their version (100, 101)
RWKV = Container("RWKV", 0x67676D66, rwkv.VERSIONS, scores=False, alignment=1)
BY_NAME = {c.name: c for c in (*CONTAINERS.values(), RWKV)}

# Bounds that no real GGML-era file comes near; they keep a crafted count from allocating.
MAX_VOCAB = 1 << 22
MAX_TOKEN_BYTES = 1 << 16
MAX_TENSORS = 1 << 16
MAX_NAME_BYTES = 512
MAX_DIMS = 4


@dataclass
class LegacyModel:
    path: str
    container: str  # "GGML" | "GGMF" | "GGJT" | "GGCC" | "RWKV"
    version: int | None  # None for unversioned GGML
    family: Family
    qversion: int  # block layouts: 0 (before PR #1405), 1 (f32 scales), 2 (today's)
    hparams: dict[str, int | float]
    vocab: list[tuple[bytes, float]]  # (text as the old converter wrote it, score; 0.0 where none stored)
    tensors: list[TensorInfo] = field(default_factory=list)  # whole tensors; type ids of the file's era
    file_size: int = 0
    merges: list[tuple[bytes, bytes]] = field(default_factory=list)  # BPE merges (GGCC only)
    parts: list[LegacyModel] = field(default_factory=list)  # every part of a multi-part model, this one first
    _by_name: dict[str, TensorInfo] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        if self.container == "RWKV":
            return f"rwkv.cpp v{self.version}"
        return self.container if self.version is None else f"{self.container} v{self.version}"

    @property
    def ftype(self) -> int:
        """The file type (llama_ftype numbers), without the ggml examples' quantization-version thousands."""
        return int(self.hparams[self.family.ftype_key]) % 1000

    @property
    def has_scores(self) -> bool:
        return self.family.vocab_scores if self.family.vocab_scores is not None else BY_NAME[self.container].scores

    def tensor(self, name: str) -> TensorInfo | None:
        if len(self._by_name) != len(self.tensors):
            self._by_name = {t.name: t for t in self.tensors}
        return self._by_name.get(name)


def read_container(path: str | os.PathLike[str], families: Sequence[Family] | None = None) -> LegacyModel:
    """Read and validate one file's header, vocabulary and tensor table (never the tensor data).

    Families that share a container are told apart by what parses: the first whose hparams, vocabulary
    and tensor table read cleanly and whose tensor names it recognises wins; else the first that parses.
    """
    with Cursor.open(path) as cur:
        magic = cur.u32("magic")
        c = CONTAINERS.get(magic)
        if c is None:
            if magic == GGUF_MAGIC:  # said here, so that callers need not sniff the file first
                raise BadInputError("already a GGUF file, not a legacy one: nothing to convert", cur.path)
            raise BadInputError("not a legacy GGML/GGMF/GGJT/GGCC/rwkv.cpp model file (unknown magic)", cur.path)
        version = None if c.versions == (None,) else cur.u32("version")
        if c.name == "GGMF" and version in RWKV.versions:
            c = RWKV
        if version not in c.versions:
            raise BadInputError(f"unknown {c.name} version {version}", cur.path)
        start = cur.pos
        candidates = list(families) if families else for_container(c.name)
        parsed: list[LegacyModel] = []
        errors: list[BadInputError] = []
        for fam in candidates:
            cur.seek(start, "header")
            try:
                parsed.append(_parse(cur, c, version, fam))
            except BadInputError as e:
                errors.append(e)
        if not parsed:
            raise errors[0]
        return next((m for m in parsed if _recognised(m)), parsed[0])


def _recognised(m: LegacyModel) -> bool:
    try:
        m.family.geometry(m, {})
    except BadInputError:
        return False
    return True


def _parse(cur: Cursor, c: Container, version: int | None, fam: Family) -> LegacyModel:
    hp: dict[str, int | float] = {}
    for p in fam.hparams:
        hp[p.name] = getattr(cur, p.kind)(f"hparam {p.name}")
    _check_hparams(hp, fam, cur)
    qversion = fam.quant_version(c.name, version, hp)
    if qversion not in blocks.QUANT_VERSIONS:
        raise cur.fail(f"unknown quantization version {qversion} (ftype {hp[fam.ftype_key]})")
    n_merges = ggcc.read_merge_count(cur) if c.name == "GGCC" else 0
    n_vocab = int(hp[fam.n_vocab_key])
    if fam.vocab_count:
        count = cur.i32("vocabulary count")
        if count != n_vocab:
            raise cur.fail(f"vocabulary count {count} differs from n_vocab {n_vocab}")
    scores = fam.vocab_scores if fam.vocab_scores is not None else c.scores
    vocab = [] if c is RWKV else _read_vocab(cur, n_vocab, scores)
    m = LegacyModel(cur.path, c.name, version, fam, qversion, hp, vocab, file_size=cur.size)
    if c.name == "GGCC":
        m.merges = ggcc.read_merges(cur, n_merges)
    m.tensors = _read_tensors(cur, c.alignment, qversion, rwkv.TO_GGML if c is RWKV else None)
    return m


def _check_hparams(hp: dict[str, int | float], fam: Family, cur: Cursor) -> None:
    n_vocab = hp[fam.n_vocab_key]
    if not 0 < n_vocab <= MAX_VOCAB:
        raise BadInputError(f"implausible vocabulary size {n_vocab}", cur.path)
    for name in ("n_embd", "n_head", "n_layer"):
        if hp.get(name) == 0:
            raise BadInputError(f"hparam {name} is 0", cur.path)


def _read_vocab(cur: Cursor, n_vocab: int, scores: bool) -> list[tuple[bytes, float]]:
    cur.count(n_vocab, 8 if scores else 4, "vocabulary size", limit=MAX_VOCAB)
    vocab = []
    for i in range(n_vocab):
        n = cur.u32(f"length of token {i}")
        if n > MAX_TOKEN_BYTES:
            raise cur.fail(f"token {i} claims {n} bytes")
        text = cur.read(n, f"token {i}")
        vocab.append((text, cur.f32(f"score of token {i}") if scores else 0.0))
    return vocab


def _read_tensors(cur: Cursor, alignment: int, qversion: int, type_map: dict[int, int] | None = None
                  ) -> list[TensorInfo]:
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    while cur.left > 0:
        if len(tensors) >= MAX_TENSORS:
            raise cur.fail(f"more than {MAX_TENSORS} tensors")
        n_dims = cur.u32("tensor n_dims")
        name_len = cur.u32("tensor name length")
        ggml_type = cur.u32("tensor type")
        if type_map is not None:  # a container with its own type numbers (rwkv.cpp)
            if ggml_type not in type_map:
                raise cur.fail(f"tensor #{len(tensors)} has data type {ggml_type}, which the format does not support")
            ggml_type = type_map[ggml_type]
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor #{len(tensors)} has {n_dims} dimensions")
        if not 0 < name_len <= MAX_NAME_BYTES:
            raise cur.fail(f"tensor #{len(tensors)} has a name of {name_len} bytes")
        shape = tuple(cur.u32("tensor dimension") for _ in range(n_dims))
        try:
            name = cur.read(name_len, "tensor name").decode("utf-8")
        except UnicodeDecodeError:
            raise cur.fail(f"tensor #{len(tensors)} name is not UTF-8") from None
        if name in seen:
            raise cur.fail(f"duplicate tensor {name!r}")
        seen.add(name)
        nbytes = tensor_nbytes(qversion, ggml_type, shape, cur.path, name)
        cur.skip(-cur.pos % alignment, f"padding of tensor {name!r}")
        offset = cur.pos
        cur.skip(nbytes, f"data of tensor {name!r}")
        tensors.append(TensorInfo(name, ggml_type, shape, offset, nbytes))
    if not tensors:
        raise cur.fail("no tensors")
    return tensors


def tensor_nbytes(qversion: int, ggml_type: int, shape: tuple[int, ...], path: str, name: str) -> int:
    """Bytes of a tensor stored with its era's block layout; raises if that era had no such type."""
    lay = blocks.layout(qversion, ggml_type)
    if lay is None:
        era = {0: "before May 2023 (GGML, GGMF, GGJT v1)", 1: "of GGJT v2 / quantization version 1",
               2: "of GGJT v3 / quantization version 2"}.get(qversion, f"of quantization version {qversion}")
        raise BadInputError(f"tensor {name!r} has type {blocks.era_type_name(ggml_type)}, which no file {era} "
                            "could hold", path)
    return blocks_nbytes(lay.block, lay.nbytes, lay.name, shape, path, name)
