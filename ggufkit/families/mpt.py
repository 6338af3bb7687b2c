"""MPT (MosaicML) as the ggml mpt example wrote it (read at ggml 82248c97).

Hparams: five i32, then two f32 (alibi_bias_max, clip_qkv; 0 = no clamp), then the i32 ftype. No
vocabulary count; each token's characters were mapped back to bytes and the resulting latin-1 code
points stored as UTF-8. Raw checkpoint names, no biases, no lm_head (tied to wte). QKV is blocked
[Q|K|V] in both the example and llama.cpp: tensors map by name alone.
"""

from __future__ import annotations

from typing import Any

from gguf import MODEL_TENSOR as MT
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families.base import Bpe, Family, Geometry, HParam, ModelLike, check_shapes, tensor_name
from ggufkit.families.gpt2 import quant_version

LAYER = {"norm_1.weight": MT.ATTN_NORM, "attn.Wqkv.weight": MT.ATTN_QKV, "attn.out_proj.weight": MT.ATTN_OUT,
         "norm_2.weight": MT.FFN_NORM, "ffn.up_proj.weight": MT.FFN_UP, "ffn.down_proj.weight": MT.FFN_DOWN}
HPARAMS = (*(HParam(n, "i32") for n in ("n_embd", "n_ctx", "n_head", "n_layer", "n_vocab")),
           HParam("alibi_bias_max", "f32"), HParam("clip_qkv", "f32"), HParam("ftype", "i32"))


def names(n_layer: int, prefix: str = "transformer.") -> dict[str, str]:
    out = {prefix + "wte.weight": tensor_name(MT.TOKEN_EMBD), prefix + "norm_f.weight": tensor_name(MT.OUTPUT_NORM)}
    for i in range(n_layer):
        out.update({f"{prefix}blocks.{i}.{k}": tensor_name(t, "weight", i) for k, t in LAYER.items()})
    return out


def layout(model: ModelLike, what: str) -> tuple[int, int, int, int]:
    """Check the MPT-shaped tensor table (MPT and Replit share it); returns n_embd, n_head, n_layer, n_ff."""
    hp, path = model.hparams, model.path
    n_embd, n_head, n_layer, n_vocab = (int(hp[k]) for k in ("n_embd", "n_head", "n_layer", "n_vocab"))
    if n_head <= 0 or n_embd % n_head:
        raise BadInputError(f"n_head {n_head} does not divide n_embd {n_embd}", path)
    if not 0 < n_layer <= len(model.tensors) // len(LAYER):
        raise BadInputError(f"not a {what} file: n_layer {n_layer} needs more tensors than the file has", path)
    up = model.tensor("transformer.blocks.0.ffn.up_proj.weight")
    if up is None or len(up.shape) != 2:
        raise BadInputError(f"not a {what} file: no transformer.blocks.0 MLP weight", path)
    n_ff = up.shape[1]
    want: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (n_embd, n_vocab), "transformer.norm_f.weight": (n_embd,)}
    per = {"norm_1.weight": (n_embd,), "attn.Wqkv.weight": (n_embd, 3 * n_embd), "attn.out_proj.weight": (n_embd, n_embd),
           "norm_2.weight": (n_embd,), "ffn.up_proj.weight": (n_embd, n_ff), "ffn.down_proj.weight": (n_ff, n_embd)}
    for i in range(n_layer):
        want.update({f"transformer.blocks.{i}.{k}": v for k, v in per.items()})
    check_shapes(model, want, what)
    return n_embd, n_head, n_layer, n_ff


def geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    n_embd, n_head, n_layer, n_ff = layout(model, "MPT")
    bias_max, clip = float(model.hparams["alibi_bias_max"]), float(model.hparams["clip_qkv"])
    if not 0 <= bias_max < 1e6 or not 0 <= clip < 1e6:  # NaN fails too
        raise BadInputError(f"implausible alibi_bias_max {bias_max} or clip_qkv {clip}", model.path)
    kv: dict[str, Any] = {Keys.LLM.EMBEDDING_LENGTH: n_embd, Keys.LLM.BLOCK_COUNT: n_layer,
                          Keys.LLM.FEED_FORWARD_LENGTH: n_ff, Keys.Attention.HEAD_COUNT: n_head,
                          Keys.Attention.MAX_ALIBI_BIAS: bias_max}
    if clip > 0:  # the example clamped only when clip_qkv was set; llama.cpp likewise only with the key
        kv[Keys.Attention.CLAMP_KQV] = clip
    summary = {"feed_forward_length": n_ff}
    return Geometry(n_layer, kv, names(n_layer), summary, from_file={"context_length": int(model.hparams["n_ctx"])})


def latin1_text(text: bytes) -> bytes:
    """Undo the converter's encoding: each byte was stored as the code point of the same value, in UTF-8
    (characters beyond U+00FF, from added tokens, are kept as UTF-8)."""
    try:
        chars = text.decode("utf-8")
    except UnicodeDecodeError:
        return text
    return b"".join(bytes([ord(c)]) if ord(c) < 256 else c.encode("utf-8") for c in chars)


FAMILY = Family(
    name="mpt",
    title="MPT (ggml mpt example)",
    arch="mpt",
    containers=("GGML",),
    hparams=HPARAMS,
    tokenizer="bpe",
    quant_version=quant_version,
    geometry=geometry,
    bpe=Bpe(pre="mpt", bos=lambda _t: 0, eos=lambda _t: 0, decode=latin1_text),
    eps_key=Keys.Attention.LAYERNORM_EPS,
    config_keys={"eps": ("layer_norm_epsilon",), "context_length": ("max_seq_len",), "rope_freq_base": ()},
    defaults={"eps": 1e-5, "context_length": 2048},
)
