"""Falcon 7B/40B as ggllm.cpp (cmp-nct/ggllm.cpp 78ac350b) wrote it: GGCC v1 (falcon_quantize's output,
the files most Falcon GGML downloads are) and falcon_convert.py's GGMF v1.

Seven u32 hparams (n_head_kv from the config; falcon_type 7 or 40), tokens as raw bytes with a zero
score; GGCC also carries the BPE merges. The converter already reordered the fused QKV into
[Q (n_head) | K (n_head_kv) | V (n_head_kv)], the layout llama.cpp expects: no permutation. Falcon-40B
has two norms per block: ln_attn feeds attention (llama.cpp's attn_norm_2), ln_mlp the MLP (attn_norm).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gguf import MODEL_TENSOR as MT
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families.base import Bpe, Family, Geometry, HParam, ModelLike, check_shapes, tensor_name

EOT = b"<|endoftext|>"
EOT_ID = 11  # ggllm hard-coded bos = eos = 11


def quant_version(container: str, _version: int | None, _hp: Mapping[str, int | float]) -> int:
    """GGCC (Oct 2023) holds today's blocks; falcon_convert.py's GGMF files are F32/F16 only."""
    return 2 if container == "GGCC" else 0


def geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    hp, path = model.hparams, model.path
    n_vocab, n_embd, n_head, n_head_kv, n_layer = (int(hp[k]) for k in ("n_vocab", "n_embd", "n_head", "n_head_kv", "n_layer"))
    if n_head <= 0 or n_embd % n_head or n_head_kv <= 0 or n_head % n_head_kv:
        raise BadInputError(f"heads {n_head} / KV heads {n_head_kv} do not fit n_embd {n_embd}", path)
    if not 0 < n_layer <= len(model.tensors) // 6:
        raise BadInputError(f"not a Falcon file: n_layer {n_layer} needs more tensors than the file has", path)
    up = model.tensor("transformer.h.0.mlp.dense_h_to_4h.weight")
    if up is None or len(up.shape) != 2:
        raise BadInputError("not a Falcon file: no transformer.h.0 MLP weight", path)
    n_ff, head_dim = up.shape[1], n_embd // n_head
    two_norms = model.tensor("transformer.h.0.ln_attn.weight") is not None  # the 40B layout
    norms = {"ln_attn": MT.ATTN_NORM_2, "ln_mlp": MT.ATTN_NORM} if two_norms else {"input_layernorm": MT.ATTN_NORM}
    want: dict[str, tuple[int, ...]] = {"transformer.word_embeddings.weight": (n_embd, n_vocab),
                                        "transformer.ln_f.weight": (n_embd,), "transformer.ln_f.bias": (n_embd,),
                                        "lm_head.weight": (n_embd, n_vocab)}
    names = {"transformer.word_embeddings.weight": tensor_name(MT.TOKEN_EMBD),
             "transformer.ln_f.weight": tensor_name(MT.OUTPUT_NORM), "transformer.ln_f.bias": tensor_name(MT.OUTPUT_NORM, "bias"),
             "lm_head.weight": tensor_name(MT.OUTPUT)}
    qkv = (n_head + 2 * n_head_kv) * head_dim
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        for norm, t in norms.items():
            for s in ("weight", "bias"):
                want[f"{p}{norm}.{s}"] = (n_embd,)
                names[f"{p}{norm}.{s}"] = tensor_name(t, s, i)
        layer = {"self_attention.query_key_value.weight": ((n_embd, qkv), MT.ATTN_QKV),
                 "self_attention.dense.weight": ((n_embd, n_embd), MT.ATTN_OUT),
                 "mlp.dense_h_to_4h.weight": ((n_embd, n_ff), MT.FFN_UP),
                 "mlp.dense_4h_to_h.weight": ((n_ff, n_embd), MT.FFN_DOWN)}
        for k, (shape, t) in layer.items():
            want[p + k] = shape
            names[p + k] = tensor_name(t, "weight", i)
    check_shapes(model, want, "Falcon")
    kv: dict[str, Any] = {Keys.LLM.EMBEDDING_LENGTH: n_embd, Keys.LLM.BLOCK_COUNT: n_layer,
                          Keys.LLM.FEED_FORWARD_LENGTH: n_ff, Keys.Attention.HEAD_COUNT: n_head,
                          Keys.Attention.HEAD_COUNT_KV: n_head_kv}
    summary = {"feed_forward_length": n_ff, "head_count_kv": n_head_kv, "model": "40B layout" if two_norms else "7B layout"}
    return Geometry(n_layer, kv, names, summary)


FAMILY = Family(
    name="falcon",
    title="Falcon 7B/40B (ggllm.cpp GGCC, falcon_convert.py GGMF)",
    arch="falcon",
    containers=("GGCC", "GGMF"),
    hparams=tuple(HParam(n) for n in ("n_vocab", "n_embd", "n_head", "n_head_kv", "n_layer", "falcon_type", "ftype")),
    tokenizer="bpe",
    quant_version=quant_version,
    geometry=geometry,
    bpe=Bpe(pre="falcon", bos=lambda t: t.index(EOT) if EOT in t else EOT_ID,
            eos=lambda t: t.index(EOT) if EOT in t else EOT_ID),
    eps_key=Keys.Attention.LAYERNORM_EPS,
    config_keys={"eps": ("layer_norm_epsilon",), "context_length": ("max_position_embeddings",), "rope_freq_base": ()},
    defaults={"eps": 1e-5, "context_length": 2048},  # llama.cpp's converter writes 2048 for Falcon
)
