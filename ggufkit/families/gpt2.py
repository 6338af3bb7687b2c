"""GPT-2 and Cerebras-GPT as the ggml repository's gpt-2 example wrote them (convert-ckpt-to-ggml.py,
convert-cerebras-to-ggml.py; read at ggml 82248c97, the parent of the commit that removed the examples).

Six i32 hparams, an i32 vocabulary count, tokens as raw bytes (no merges), TensorFlow-style names.
Both converters transposed the Conv1D weights, so every matrix is already in llama.cpp's layout and
the fused QKV is blocked [Q|K|V] in both: tensors map by name alone. StarCoder files share this layout
(starcoder.py); they are told apart by the vocabulary (StarCoder's <|endoftext|> is token 0, GPT-2's last).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gguf import MODEL_TENSOR as MT
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families.base import Bpe, Family, Geometry, HParam, ModelLike, check_shapes, tensor_name

EOT = b"<|endoftext|>"
GLOBAL = {"model/wte": (MT.TOKEN_EMBD, "weight"), "model/wpe": (MT.POS_EMBD, "weight"),
          "model/lm_head": (MT.OUTPUT, "weight"), "model/ln_f/g": (MT.OUTPUT_NORM, "weight"),
          "model/ln_f/b": (MT.OUTPUT_NORM, "bias")}
LAYER = {"ln_1/g": (MT.ATTN_NORM, "weight"), "ln_1/b": (MT.ATTN_NORM, "bias"),
         "attn/c_attn/w": (MT.ATTN_QKV, "weight"), "attn/c_attn/b": (MT.ATTN_QKV, "bias"),
         "attn/c_proj/w": (MT.ATTN_OUT, "weight"), "attn/c_proj/b": (MT.ATTN_OUT, "bias"),
         "ln_2/g": (MT.FFN_NORM, "weight"), "ln_2/b": (MT.FFN_NORM, "bias"),
         "mlp/c_fc/w": (MT.FFN_UP, "weight"), "mlp/c_fc/b": (MT.FFN_UP, "bias"),
         "mlp/c_proj/w": (MT.FFN_DOWN, "weight"), "mlp/c_proj/b": (MT.FFN_DOWN, "bias")}


def quant_version(_container: str, _version: int | None, hp: Mapping[str, int | float]) -> int:
    """The ggml examples' quantize tools wrote ftype = GGML_QNT_VERSION * 1000 + ftype."""
    return int(hp["ftype"]) // 1000


def names(n_layer: int) -> dict[str, str]:
    out = {k: tensor_name(t, s) for k, (t, s) in GLOBAL.items()}
    for i in range(n_layer):
        out.update({f"model/h{i}/{k}": tensor_name(t, s, i) for k, (t, s) in LAYER.items()})
    return out


def starcoder_vocab(vocab: list[tuple[bytes, float]]) -> bool:
    """StarCoder/SantaCoder's tokenizer starts with <|endoftext|>; GPT-2's ends with it."""
    return bool(vocab) and vocab[0][0] == EOT


def layout(model: ModelLike, what: str, mqa: bool) -> Geometry:
    """The gpt-2 example's tensor layout; `mqa`: K/V may be narrower than Q (StarCoder's multi-query)."""
    hp, path = model.hparams, model.path
    n_vocab, n_ctx, n_embd, n_head, n_layer = (int(hp[k]) for k in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"))
    if n_head <= 0 or n_embd % n_head:
        raise BadInputError(f"n_head {n_head} does not divide n_embd {n_embd}", path)
    if not 0 < n_layer <= len(model.tensors) // len(LAYER):
        raise BadInputError(f"not a {what} file: n_layer {n_layer} needs {n_layer * len(LAYER)} layer tensors, "
                            f"the file has {len(model.tensors)} tensors", path)
    qkv = model.tensor("model/h0/attn/c_attn/w")
    fc = model.tensor("model/h0/mlp/c_fc/w")
    if qkv is None or fc is None or len(qkv.shape) != 2 or len(fc.shape) != 2:
        raise BadInputError(f"not a {what} file: no model/h0 attention and MLP weights", path)
    head_dim, n_ff = n_embd // n_head, fc.shape[1]
    kv_width = (qkv.shape[1] - n_embd) // 2 if mqa else n_embd
    if kv_width <= 0 or kv_width % head_dim:
        raise BadInputError(f"fused QKV width {qkv.shape[1]} does not fit {n_head} heads of {head_dim}", path)
    n_head_kv = kv_width // head_dim
    want: dict[str, tuple[int, ...]] = {"model/wte": (n_embd, n_vocab), "model/wpe": (n_embd, n_ctx),
                                        "model/lm_head": (n_embd, n_vocab), "model/ln_f/g": (n_embd,),
                                        "model/ln_f/b": (n_embd,)}
    q = n_embd + 2 * kv_width
    per = {"ln_1/g": (n_embd,), "ln_1/b": (n_embd,), "attn/c_attn/w": (n_embd, q), "attn/c_attn/b": (q,),
           "attn/c_proj/w": (n_embd, n_embd), "attn/c_proj/b": (n_embd,), "ln_2/g": (n_embd,), "ln_2/b": (n_embd,),
           "mlp/c_fc/w": (n_embd, n_ff), "mlp/c_fc/b": (n_ff,), "mlp/c_proj/w": (n_ff, n_embd),
           "mlp/c_proj/b": (n_embd,)}
    for i in range(n_layer):
        want.update({f"model/h{i}/{k}": v for k, v in per.items()})
    # lm_head: Cerebras and StarCoder wrote it, OpenAI's checkpoint did not (the output is tied to wte)
    check_shapes(model, want, what, optional=("model/lm_head",))
    kv: dict[str, Any] = {Keys.LLM.EMBEDDING_LENGTH: n_embd, Keys.LLM.BLOCK_COUNT: n_layer,
                          Keys.LLM.FEED_FORWARD_LENGTH: n_ff, Keys.Attention.HEAD_COUNT: n_head}
    summary: dict[str, Any] = {"feed_forward_length": n_ff}
    if mqa:
        kv[Keys.Attention.HEAD_COUNT_KV] = n_head_kv
        summary["head_count_kv"] = n_head_kv
    return Geometry(n_layer, kv, names(n_layer), summary, from_file={"context_length": n_ctx})


def geometry(model: ModelLike, options: dict[str, Any]) -> Geometry:
    if starcoder_vocab(model.vocab) and not options.get("forced"):
        raise BadInputError("not a GPT-2 file: the vocabulary starts with <|endoftext|>, as StarCoder's does",
                            model.path)
    return layout(model, "GPT-2", mqa=False)


def eot_or_last(tokens: list[bytes]) -> int:
    return tokens.index(EOT) if EOT in tokens else len(tokens) - 1


HPARAMS = tuple(HParam(n, "i32") for n in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "ftype"))
GPT2_CONFIG = {"eps": ("layer_norm_epsilon",), "context_length": ("n_positions",), "rope_freq_base": ()}

FAMILY = Family(
    name="gpt2",
    title="GPT-2, Cerebras-GPT (ggml gpt-2 example)",
    arch="gpt2",
    containers=("GGML",),
    hparams=HPARAMS,
    tokenizer="bpe",
    quant_version=quant_version,
    geometry=geometry,
    vocab_count=True,
    bpe=Bpe(pre="gpt-2", bos=eot_or_last, eos=eot_or_last),
    eps_key=Keys.Attention.LAYERNORM_EPS,
    config_keys=GPT2_CONFIG,
    defaults={"eps": 1e-5, "context_length": 1024},  # the example's main hard-coded eps 1e-5
)
