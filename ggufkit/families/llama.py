"""LLaMA in llama.cpp's own pre-GGUF containers (GGML, GGMF, GGJT v1-v3), as its convert.py wrote it.

Seven u32 hparams; n_ff and n_head_kv are not stored but follow from tensor shapes. The q/k weights
were already permuted for llama.cpp's RoPE by the old converter, so every tensor maps by name alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import gguf
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families.base import Family, Geometry, HParam, ModelLike

GLOBAL = ("tok_embeddings.weight", "norm.weight", "output.weight")
LAYER = (
    "attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
    "attention_norm.weight",
    "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight",
    "ffn_norm.weight",
)
# Multi-part files (13B and up, before mid-2023) split these along ne0 and every other 2-D tensor along ne1
_SPLIT_COLUMNS = ("tok_embeddings.weight", ".attention.wo.weight", ".feed_forward.w2.weight")


def legacy_names(n_layer: int) -> list[str]:
    """Tensor names in the order the old converter wrote them."""
    return [*GLOBAL, *(f"layers.{i}.{n}" for i in range(n_layer) for n in LAYER)]


@functools.lru_cache(maxsize=8)
def legacy_to_gguf(n_layer: int) -> dict[str, str]:
    """legacy name -> GGUF name, from gguf-py's TensorNameMap (which knows the llama-pth names)."""
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    out = {}
    for name in legacy_names(n_layer):
        mapped = tmap.get_name(name, try_suffixes=(".weight",))
        assert mapped is not None, name
        out[name] = mapped
    return out


def gguf_to_legacy(n_layer: int) -> dict[str, str]:
    return {v: k for k, v in legacy_to_gguf(n_layer).items()}


def quant_version(container: str, version: int | None, _hparams: Mapping[str, int | float]) -> int:
    """GGML, GGMF and GGJT v1 predate PR #1405 (nibble order), GGJT v2 predates PR #1508 (f16 scales)."""
    return {("GGJT", 2): 1, ("GGJT", 3): 2}.get((container, version), 0)


def split_axis(name: str, n_dims: int) -> int | None:
    if n_dims < 2:
        return None  # norms: every part holds the whole vector
    return 0 if any(name.endswith(s) for s in _SPLIT_COLUMNS) else 1


def geometry(model: ModelLike, options: dict[str, Any]) -> Geometry:
    """Derive and check the LLaMA geometry; options["gqa"] (n_head / n_head_kv) overrides the inferred value."""
    hp, path = model.hparams, model.path
    n_vocab, n_embd, n_head, n_layer = hp["n_vocab"], hp["n_embd"], hp["n_head"], hp["n_layer"]
    if n_head == 0 or n_embd % n_head:
        raise BadInputError(f"n_head {n_head} does not divide n_embd {n_embd}", path)
    head_dim = n_embd // n_head
    needed = len(GLOBAL) + len(LAYER) * n_layer  # before listing names: n_layer may be 2^32-1
    if needed > len(model.tensors):
        raise BadInputError(f"not a LLaMA-family file: n_layer {n_layer} needs {needed} tensors, "
                            f"the file has {len(model.tensors)}", path)
    missing = [n for n in legacy_names(n_layer) if model.tensor(n) is None]
    if missing:
        raise BadInputError(f"not a LLaMA-family file: tensor {missing[0]!r} is missing", path)
    n_ff = model.tensor("layers.0.feed_forward.w1.weight").shape[1]
    wk = model.tensor("layers.0.attention.wk.weight")
    gqa = options.get("gqa")
    if gqa is not None:
        if gqa <= 0 or n_head % gqa:
            raise BadInputError(f"--gqa {gqa} does not divide n_head {n_head}", path)
        n_head_kv = n_head // gqa
    else:
        if wk.shape[1] % head_dim:
            raise BadInputError(f"K projection width {wk.shape[1]} is not a multiple of the head size {head_dim}", path)
        n_head_kv = wk.shape[1] // head_dim
    if n_head_kv == 0 or n_head % n_head_kv:
        raise BadInputError(f"n_head_kv {n_head_kv} does not divide n_head {n_head}", path)
    _check_shapes(model, n_vocab, n_embd, n_layer, n_head_kv * head_dim, n_ff)
    kv = {
        Keys.LLM.EMBEDDING_LENGTH: n_embd, Keys.LLM.BLOCK_COUNT: n_layer, Keys.LLM.FEED_FORWARD_LENGTH: n_ff,
        Keys.Rope.DIMENSION_COUNT: head_dim, Keys.Attention.HEAD_COUNT: n_head,
        Keys.Attention.HEAD_COUNT_KV: n_head_kv,
    }
    summary = {"feed_forward_length": n_ff, "head_count_kv": n_head_kv}
    return Geometry(n_layer, kv, legacy_to_gguf(n_layer), summary)


def _check_shapes(model: ModelLike, n_vocab: int, n_embd: int, n_layer: int, kv: int, n_ff: int) -> None:
    want = {"tok_embeddings.weight": (n_embd, n_vocab), "norm.weight": (n_embd,), "output.weight": (n_embd, n_vocab)}
    per_layer = {
        "attention.wq.weight": (n_embd, n_embd), "attention.wk.weight": (n_embd, kv),
        "attention.wv.weight": (n_embd, kv), "attention.wo.weight": (n_embd, n_embd),
        "attention_norm.weight": (n_embd,), "ffn_norm.weight": (n_embd,),
        "feed_forward.w1.weight": (n_embd, n_ff), "feed_forward.w2.weight": (n_ff, n_embd),
        "feed_forward.w3.weight": (n_embd, n_ff),
    }
    for i in range(n_layer):
        want.update({f"layers.{i}.{k}": v for k, v in per_layer.items()})
    for name, shape in want.items():
        t = model.tensor(name)
        if t.shape != shape:
            raise BadInputError(f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)}", model.path)
    extra = [t.name for t in model.tensors if t.name not in want]
    if extra:
        raise BadInputError(f"unexpected tensor {extra[0]!r} for a LLaMA file with {n_layer} layers", model.path)


FAMILY = Family(
    name="llama",
    arch="llama",
    containers=("GGML", "GGMF", "GGJT"),
    hparams=tuple(HParam(n) for n in ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot", "ftype")),
    tokenizer="spm",
    quant_version=quant_version,
    geometry=geometry,
    split_axis=split_axis,
    defaults={"eps": 5e-6, "context_length": 2048},  # llama.cpp's own converter chose 5e-6; LLaMA-1 is 2048
)
