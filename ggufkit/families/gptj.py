"""GPT-J as the ggml gpt-j example wrote it (read at ggml 82248c97): inspect only.

Seven i32 hparams (n_rot = rotary_dim), an i32 vocabulary count, raw-byte tokens, Hugging Face names
with separate q/k/v projections. Current llama.cpp knows the name "gptj" but has no tensors or graph
for it, so `convert` refuses; `inspect` describes the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.families.base import Family, Geometry, HParam, ModelLike, need_tensors, n_layer_checked
from ggufkit.families.gpt2 import quant_version

GPTJ_LAYER = ("ln_1.weight", "ln_1.bias", "attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight",
              "attn.out_proj.weight", "mlp.fc_in.weight", "mlp.fc_in.bias", "mlp.fc_out.weight", "mlp.fc_out.bias")


def gptj_geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    n_layer = n_layer_checked(model, len(GPTJ_LAYER), "GPT-J")
    need_tensors(model, ["transformer.wte.weight", "transformer.ln_f.weight", "lm_head.weight",
                  *(f"transformer.h.{i}.{k}" for i in range(n_layer) for k in GPTJ_LAYER)], "GPT-J")
    n_embd = int(model.hparams["n_embd"])
    if model.tensor("transformer.wte.weight").shape != (n_embd, int(model.hparams["n_vocab"])):
        raise BadInputError("not a GPT-J file: transformer.wte.weight does not match n_embd x n_vocab", model.path)
    return Geometry(n_layer, {}, {}, {"feed_forward_length": model.tensor("transformer.h.0.mlp.fc_in.weight").shape[1]})


FAMILY = Family(
    name="gptj", title="GPT-J (ggml gpt-j example)", arch=None, containers=("GGML",),
    hparams=tuple(HParam(n, "i32") for n in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_rot", "ftype")),
    tokenizer="bpe", quant_version=quant_version, geometry=gptj_geometry, vocab_count=True,
    why_not="current llama.cpp has no graph for GPT-J (the gptj architecture is a name without an "
            "implementation), so no GGUF of it would load",
)
