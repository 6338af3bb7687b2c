"""Reader for pre-GGUF llama.cpp files: GGML (unversioned), GGMF v1 and GGJT v1-v3.

Layout (all little-endian u32 unless said): magic, version (not in GGML), 7 hparams, n_vocab vocab
entries (len, bytes, f32 score except in GGML), then tensor records to the end of the file:
n_dims, name_len, ggml_type, dims (ne0 first), name, zero padding to 32 bytes (GGJT only), data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ggufkit.errors import BadInputError
from ggufkit.formats.cursor import Cursor
from ggufkit.formats.types import LEGACY_TENSOR_TYPES, TensorInfo, tensor_nbytes, type_name

MAGIC_GGML = 0x67676D6C
MAGIC_GGMF = 0x67676D66
MAGIC_GGJT = 0x67676A74
LEGACY_MAGICS = {MAGIC_GGML: "GGML", MAGIC_GGMF: "GGMF", MAGIC_GGJT: "GGJT"}
GGJT_ALIGNMENT = 32
HPARAM_NAMES = ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot", "ftype")

# Bounds that no real LLaMA-era file comes near; they keep a crafted count from allocating.
MAX_VOCAB = 1 << 22
MAX_TOKEN_BYTES = 1 << 16
MAX_TENSORS = 1 << 16
MAX_NAME_BYTES = 512
MAX_DIMS = 4


LegacyTensor = TensorInfo


@dataclass(frozen=True)
class LegacyHparams:
    n_vocab: int
    n_embd: int
    n_mult: int
    n_head: int
    n_layer: int
    n_rot: int
    ftype: int


@dataclass
class LegacyModel:
    path: str
    container: str  # "GGML" | "GGMF" | "GGJT"
    version: int | None  # None for unversioned GGML
    hparams: LegacyHparams
    vocab: list[tuple[bytes, float]]  # (text as the old converter wrote it, score)
    tensors: list[LegacyTensor] = field(default_factory=list)
    file_size: int = 0
    _by_name: dict[str, LegacyTensor] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return self.container if self.version is None else f"{self.container} v{self.version}"

    @property
    def has_scores(self) -> bool:
        return self.container != "GGML"

    def tensor(self, name: str) -> LegacyTensor | None:
        if len(self._by_name) != len(self.tensors):
            self._by_name = {t.name: t for t in self.tensors}
        return self._by_name.get(name)


def read_legacy(path: str | os.PathLike[str]) -> LegacyModel:
    """Read and validate the header, vocabulary and tensor table (never the tensor data)."""
    path = os.fspath(path)
    try:
        fp = open(path, "rb")
    except OSError as e:
        raise BadInputError(f"cannot open: {e.strerror}", path) from None
    with fp:
        size = os.fstat(fp.fileno()).st_size
        cur = Cursor(fp, size, path)
        magic = cur.u32("magic")
        container = LEGACY_MAGICS.get(magic)
        if container is None:
            raise BadInputError("not a GGML/GGMF/GGJT file (bad magic)", path)
        version = None
        if container != "GGML":
            version = cur.u32("version")
            if (container, version) not in {("GGMF", 1), ("GGJT", 1), ("GGJT", 2), ("GGJT", 3)}:
                raise BadInputError(f"unknown {container} version {version}", path)
        hp = LegacyHparams(*(cur.u32(f"hparam {n}") for n in HPARAM_NAMES))
        _check_hparams(hp, path)
        vocab = _read_vocab(cur, hp.n_vocab, scores=container != "GGML")
        model = LegacyModel(path, container, version, hp, vocab, file_size=size)
        model.tensors = _read_tensors(cur, aligned=container == "GGJT")
    return model


def _check_hparams(hp: LegacyHparams, path: str) -> None:
    if not 0 < hp.n_vocab <= MAX_VOCAB:
        raise BadInputError(f"implausible vocabulary size {hp.n_vocab}", path)
    for name in ("n_embd", "n_head", "n_layer"):
        if getattr(hp, name) == 0:
            raise BadInputError(f"hparam {name} is 0", path)


def _read_vocab(cur: Cursor, n_vocab: int, scores: bool) -> list[tuple[bytes, float]]:
    entry_min = 8 if scores else 4
    cur.count(n_vocab, entry_min, "vocabulary size", limit=MAX_VOCAB)
    vocab = []
    for i in range(n_vocab):
        n = cur.u32(f"length of token {i}")
        if n > MAX_TOKEN_BYTES:
            raise cur.fail(f"token {i} claims {n} bytes")
        text = cur.read(n, f"token {i}")
        vocab.append((text, cur.f32(f"score of token {i}") if scores else 0.0))
    return vocab


def _read_tensors(cur: Cursor, aligned: bool) -> list[LegacyTensor]:
    tensors: list[LegacyTensor] = []
    seen: set[str] = set()
    while cur.left > 0:
        if len(tensors) >= MAX_TENSORS:
            raise cur.fail(f"more than {MAX_TENSORS} tensors")
        n_dims = cur.u32("tensor n_dims")
        name_len = cur.u32("tensor name length")
        ggml_type = cur.u32("tensor type")
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
        if ggml_type not in LEGACY_TENSOR_TYPES:
            why = " (Q4_2/Q4_3 were removed from llama.cpp in May 2023)" if ggml_type in (4, 5) else ""
            raise cur.fail(f"tensor {name!r} has type {type_name(ggml_type)}, not a legacy llama.cpp type{why}")
        nbytes = tensor_nbytes(ggml_type, shape, cur.path, name)
        if aligned:
            cur.skip(-cur.pos % GGJT_ALIGNMENT, f"padding of tensor {name!r}")
        offset = cur.pos
        cur.skip(nbytes, f"data of tensor {name!r}")
        tensors.append(LegacyTensor(name, ggml_type, shape, offset, nbytes))
    if not tensors:
        raise cur.fail("no tensors")
    return tensors
