"""LLaMA tensor names: the legacy (pre-GGUF) ones, in the order the old converter wrote them, and GGUF's."""

from __future__ import annotations

import functools

import gguf

LEGACY_GLOBAL = ("tok_embeddings.weight", "norm.weight", "output.weight")
LEGACY_LAYER = (
    "attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
    "attention_norm.weight",
    "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight",
    "ffn_norm.weight",
)


def legacy_names(n_layer: int) -> list[str]:
    return [*LEGACY_GLOBAL, *(f"layers.{i}.{n}" for i in range(n_layer) for n in LEGACY_LAYER)]


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
