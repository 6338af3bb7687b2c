"""What a model family is to ggufkit: a small declarative description, read by the readers and the one
conversion engine. A family module holds data and pure functions of a file's header and tensor table;
it imports nothing from formats/ or converters/ (they import it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class TensorLike(Protocol):
    name: str
    shape: tuple[int, ...]


class ModelLike(Protocol):
    """What a family sees of an opened legacy file (formats.legacy.LegacyModel satisfies it)."""

    path: str
    container: str
    version: int | None
    hparams: Mapping[str, int | float]
    tensors: list[Any]

    def tensor(self, name: str) -> Any: ...


@dataclass(frozen=True)
class HParam:
    name: str
    kind: str = "u32"  # "u32" | "i32" | "f32", as the file stores it


@dataclass(frozen=True)
class Geometry:
    """A checked model: GGUF hparams by gguf-py key template ("{arch}.block_count") and tensor names."""

    n_layer: int
    kv: dict[str, int | float | bool]
    names: dict[str, str]  # legacy tensor name -> GGUF tensor name
    summary: dict[str, int | float] = field(default_factory=dict)  # by-name hparams for reports


@dataclass(frozen=True)
class Family:
    name: str  # as users name it (--arch), e.g. "llama"
    arch: str | None  # GGUF general.architecture; None: current llama.cpp cannot run it (inspect only)
    containers: tuple[str, ...]  # containers whose files it appears in
    hparams: tuple[HParam, ...]  # in file order, right after magic (and version)
    tokenizer: str  # "spm" (SentencePiece pieces) | "bpe" (byte-level BPE, GPT-2 style)
    quant_version: Callable[[str, int | None, Mapping[str, int | float]], int]
    geometry: Callable[[ModelLike, dict[str, Any]], Geometry]  # checks shapes; raises BadInputError
    vocab_scores: bool | None = None  # None: as the container says (GGMF/GGJT hold scores, GGML not)
    why_not: str | None = None  # why `convert` refuses it (arch None)
    split_axis: Callable[[str, int], int | None] | None = None  # multi-part files: dim a tensor is split on
    defaults: dict[str, Any] = field(default_factory=dict)  # what the file lacks: eps, context_length
    n_vocab_key: str = "n_vocab"
    ftype_key: str = "ftype"
