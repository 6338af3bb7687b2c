"""What a model family is to ggufkit: a small declarative description, read by the readers and the one
conversion engine. A family module holds data and pure functions of a file's header and tensor table;
it imports nothing from formats/ or converters/ (they import it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import gguf
from gguf.constants import Keys

from ggufkit.errors import BadInputError


class TensorLike(Protocol):
    name: str
    shape: tuple[int, ...]


class ModelLike(Protocol):
    """What a family sees of an opened legacy file (formats.legacy.LegacyModel satisfies it)."""

    path: str
    container: str
    version: int | None
    hparams: Mapping[str, int | float]
    vocab: list[tuple[bytes, float]]
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
    # legacy name -> source row of each output row: a fused tensor whose rows llama.cpp expects in
    # another order (rows are whole quant blocks, so this is lossless at any type)
    rows: dict[str, Any] = field(default_factory=dict)
    from_file: dict[str, Any] = field(default_factory=dict)  # settings the file itself holds (context_length)


@dataclass(frozen=True)
class Bpe:
    """A byte-level BPE vocabulary (GGUF tokenizer.ggml.model "gpt2") as a family's files hold it."""

    pre: str  # tokenizer.ggml.pre: llama.cpp's pre-tokenizer regex for the family
    bos: Callable[[list[bytes]], int]  # the family's bos / eos ids, given the file's token texts
    eos: Callable[[list[bytes]], int]
    # the token's raw bytes from the text the converter stored (identity for most; MPT stored
    # latin-1 code points as UTF-8); None where the text is lossy (a U+FFFD the converter wrote)
    decode: Callable[[bytes], bytes] = lambda b: b
    lossy: str | None = None  # why the stored text may not be the token (reported by convert)


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
    title: str = ""  # the models it covers, for people
    vocab_count: bool = False  # an i32 count (= n_vocab) precedes the vocabulary (gpt-2, gpt-j, starcoder)
    bpe: Bpe | None = None  # tokenizer "bpe": how its vocabulary becomes GGUF's
    eps_key: str = Keys.Attention.LAYERNORM_RMS_EPS  # RMSNorm (LLaMA) or LayerNorm epsilon
    # config.json keys of each setting, first found wins (HF names differ between architectures)
    config_keys: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "eps": ("rms_norm_eps",), "context_length": ("max_position_embeddings",), "rope_freq_base": ("rope_theta",)})


def tensor_name(kind: gguf.MODEL_TENSOR, suffix: str = "weight", bid: int | None = None) -> str:
    """GGUF tensor name from gguf-py's table, e.g. (ATTN_QKV, "bias", 3) -> "blk.3.attn_qkv.bias"."""
    base = gguf.TENSOR_NAMES[kind]
    return f"{base.format(bid=bid) if bid is not None else base}.{suffix}"


def check_shapes(model: ModelLike, want: dict[str, tuple[int, ...]], what: str, optional: tuple[str, ...] = ()) -> None:
    """Every tensor of `want` present with its shape (ne0 first), none else; `optional` ones may be absent."""
    for name, shape in want.items():
        t = model.tensor(name)
        if t is None:
            if name in optional:
                continue
            raise BadInputError(f"not a {what} file: tensor {name!r} is missing", model.path)
        if t.shape != shape:
            raise BadInputError(f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)}", model.path)
    extra = [t.name for t in model.tensors if t.name not in want]
    if extra:
        raise BadInputError(f"unexpected tensor {extra[0]!r} for a {what} file", model.path)


def need_tensors(model: ModelLike, names: list[str], what: str) -> None:
    missing = next((n for n in names if model.tensor(n) is None), None)
    if missing is not None:
        raise BadInputError(f"not a {what} file: tensor {missing!r} is missing", model.path)


def n_layer_checked(model: ModelLike, per_layer: int, what: str) -> int:
    n_layer = int(model.hparams["n_layer"])
    if not 0 < n_layer <= len(model.tensors) // per_layer:
        raise BadInputError(f"not a {what} file: n_layer {n_layer} needs more tensors than the file has", model.path)
    return n_layer
