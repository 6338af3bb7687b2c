"""Replit code v1 as the ggml replit example wrote it (read at ggml 82248c97): inspect only.

Six i32 hparams, a SentencePiece vocabulary (text with U+2581, f32 score), MPT's tensor table with
ALiBi max bias hard-coded to 8. Current llama.cpp has no replit architecture, so `convert` refuses.
"""

from __future__ import annotations

from typing import Any

from ggufkit.families import mpt
from ggufkit.families.base import Family, Geometry, HParam, ModelLike
from ggufkit.families.gpt2 import quant_version


def replit_geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    n_embd, n_head, n_layer, n_ff = mpt.layout(model, "Replit")
    return Geometry(n_layer, {}, {}, {"feed_forward_length": n_ff, "alibi_bias_max": 8.0})


FAMILY = Family(
    name="replit", title="Replit code v1 (ggml replit example)", arch=None, containers=("GGML",),
    hparams=tuple(HParam(n, "i32") for n in ("n_embd", "n_ctx", "n_head", "n_layer", "n_vocab", "ftype")),
    tokenizer="spm", quant_version=quant_version, geometry=replit_geometry, vocab_scores=True,
    why_not="current llama.cpp has no replit architecture, so no GGUF of it would load",
)
