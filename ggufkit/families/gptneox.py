"""GPT-NeoX (Pythia, RedPajama-INCITE, StableLM-alpha) and Dolly-v2, as the ggml gpt-neox and dolly-v2
examples wrote them (the same layout; read at ggml 82248c97).

Eight i32 hparams (n_rot = rotary_pct * head_dim, par_res = use_parallel_residual), no vocabulary
count, Hugging Face tensor names. The fused QKV keeps Hugging Face's per-head interleaved rows
[h0: q k v | h1: q k v | ...] (the example's main views it that way); llama.cpp views it blocked
[Q | K | V], so its weight and bias rows are permuted as llama.cpp's convert_hf_to_gguf does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gguf import MODEL_TENSOR as MT
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families.base import Bpe, Family, Geometry, HParam, ModelLike, check_shapes, tensor_name
from ggufkit.families.gpt2 import EOT, quant_version

GLOBAL = {"gpt_neox.embed_in.weight": (MT.TOKEN_EMBD, "weight"), "embed_out.weight": (MT.OUTPUT, "weight"),
          "gpt_neox.final_layer_norm.weight": (MT.OUTPUT_NORM, "weight"),
          "gpt_neox.final_layer_norm.bias": (MT.OUTPUT_NORM, "bias")}
LAYER = {"input_layernorm": MT.ATTN_NORM, "post_attention_layernorm": MT.FFN_NORM,
         "attention.query_key_value": MT.ATTN_QKV, "attention.dense": MT.ATTN_OUT,
         "mlp.dense_h_to_4h": MT.FFN_UP, "mlp.dense_4h_to_h": MT.FFN_DOWN}


def interleaved_to_blocked(n_head: int, head_dim: int) -> np.ndarray:
    """Source row of each output row: output [Q | K | V] (each head by head) from [h: q k v] per head."""
    return np.arange(3 * n_head * head_dim).reshape(n_head, 3, head_dim).transpose(1, 0, 2).ravel()


def names(n_layer: int) -> dict[str, str]:
    out = {k: tensor_name(t, s) for k, (t, s) in GLOBAL.items()}
    for i in range(n_layer):
        for k, t in LAYER.items():
            for s in ("weight", "bias"):
                out[f"gpt_neox.layers.{i}.{k}.{s}"] = tensor_name(t, s, i)
    return out


def geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    hp, path = model.hparams, model.path
    n_vocab, n_ctx, n_embd, n_head, n_layer, n_rot = (
        int(hp[k]) for k in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_rot"))
    if n_head <= 0 or n_embd % n_head:
        raise BadInputError(f"n_head {n_head} does not divide n_embd {n_embd}", path)
    head_dim = n_embd // n_head
    if not 0 < n_rot <= head_dim:
        raise BadInputError(f"n_rot {n_rot} is not within the head size {head_dim}", path)
    if not 0 < n_layer <= len(model.tensors) // (2 * len(LAYER)):
        raise BadInputError(f"not a GPT-NeoX file: n_layer {n_layer} needs more tensors than the file has", path)
    up = model.tensor("gpt_neox.layers.0.mlp.dense_h_to_4h.weight")
    if up is None or len(up.shape) != 2:
        raise BadInputError("not a GPT-NeoX file: no gpt_neox.layers.0 MLP weight", path)
    n_ff = up.shape[1]
    want: dict[str, tuple[int, ...]] = {"gpt_neox.embed_in.weight": (n_embd, n_vocab),
                                        "embed_out.weight": (n_embd, n_vocab),
                                        "gpt_neox.final_layer_norm.weight": (n_embd,),
                                        "gpt_neox.final_layer_norm.bias": (n_embd,)}
    rows = {}
    perm = interleaved_to_blocked(n_head, head_dim)
    for i in range(n_layer):
        p = f"gpt_neox.layers.{i}."
        want.update({p + "input_layernorm.weight": (n_embd,), p + "input_layernorm.bias": (n_embd,),
                     p + "post_attention_layernorm.weight": (n_embd,), p + "post_attention_layernorm.bias": (n_embd,),
                     p + "attention.query_key_value.weight": (n_embd, 3 * n_embd),
                     p + "attention.query_key_value.bias": (3 * n_embd,),
                     p + "attention.dense.weight": (n_embd, n_embd), p + "attention.dense.bias": (n_embd,),
                     p + "mlp.dense_h_to_4h.weight": (n_embd, n_ff), p + "mlp.dense_h_to_4h.bias": (n_ff,),
                     p + "mlp.dense_4h_to_h.weight": (n_ff, n_embd), p + "mlp.dense_4h_to_h.bias": (n_embd,)})
        rows[p + "attention.query_key_value.weight"] = rows[p + "attention.query_key_value.bias"] = perm
    check_shapes(model, want, "GPT-NeoX")
    kv: dict[str, Any] = {Keys.LLM.EMBEDDING_LENGTH: n_embd, Keys.LLM.BLOCK_COUNT: n_layer,
                          Keys.LLM.FEED_FORWARD_LENGTH: n_ff, Keys.Attention.HEAD_COUNT: n_head,
                          Keys.Rope.DIMENSION_COUNT: n_rot, Keys.LLM.USE_PARALLEL_RESIDUAL: bool(hp["par_res"])}
    summary = {"feed_forward_length": n_ff, "use_parallel_residual": bool(hp["par_res"])}
    return Geometry(n_layer, kv, names(n_layer), summary, rows, from_file={"context_length": n_ctx})



FAMILY = Family(
    name="gptneox",
    title="GPT-NeoX, Pythia, RedPajama-INCITE, StableLM-alpha, Dolly-v2 (ggml gpt-neox / dolly-v2 examples)",
    arch="gptneox",
    containers=("GGML",),
    hparams=tuple(HParam(n, "i32") for n in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_rot", "par_res",
                                             "ftype")),
    tokenizer="bpe",
    quant_version=quant_version,
    geometry=geometry,
    # the NeoX-20B tokenizer (also MPT's): llama.cpp gives it the "mpt" pre-tokenizer; <|endoftext|> is 0
    bpe=Bpe(pre="mpt", bos=lambda t: t.index(EOT) if EOT in t else 0, eos=lambda t: t.index(EOT) if EOT in t else 0,
            lossy="the converter stored each token decoded as text, byte fragments as U+FFFD; "
                  "--metadata-dir with tokenizer.json gives the exact vocabulary"),
    eps_key=Keys.Attention.LAYERNORM_EPS,
    config_keys={"eps": ("layer_norm_eps",), "context_length": ("max_position_embeddings",),
                 "rope_freq_base": ("rotary_emb_base",)},
    defaults={"eps": 1e-5, "context_length": 2048},
)
