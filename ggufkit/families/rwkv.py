"""RWKV-4/5 files of rwkv.cpp (docs/FILE_FORMAT.md at RWKV/rwkv.cpp 4358e709): inspect only.

rwkv.cpp's own container (formats/legacy/rwkv.py): magic 'ggmf', format version 100/101, four u32
hparams, no vocabulary, BlinkDL checkpoint names. Current llama.cpp runs RWKV-6 and RWKV-7 only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.families.base import Family, Geometry, HParam, ModelLike, need_tensors, n_layer_checked

RWKV_VERSIONS = (("att.k_k", "7"), ("att.time_maa_x", "6"), ("att.gate", "5.2"), ("att.ln_x", "5.1"))


def rwkv_geometry(model: ModelLike, _options: dict[str, Any]) -> Geometry:
    n_layer = n_layer_checked(model, 10, "RWKV")
    need_tensors(model, ["emb.weight", "ln_out.weight", "head.weight",
                  *(f"blocks.{i}.ln1.weight" for i in range(n_layer))], "RWKV")
    # rwkv.cpp's converter tells versions apart by the tensors present (convert_pytorch_to_ggml.py)
    version = next((v for k, v in RWKV_VERSIONS if model.tensor(f"blocks.0.{k}") is not None), "4")
    return Geometry(n_layer, {}, {}, {"rwkv_version": version})


def rwkv_quant_version(_c: str, version: int | None, _hp: Mapping[str, int | float]) -> int:
    """rwkv.cpp format version 100 holds the blocks of before May 2023, 101 today's."""
    return 2 if version == 101 else 0


FAMILY = Family(
    name="rwkv", title="RWKV-4/5 (rwkv.cpp)", arch=None, containers=("RWKV",),
    hparams=tuple(HParam(n) for n in ("n_vocab", "n_embd", "n_layer", "data_type")),
    tokenizer="none", quant_version=rwkv_quant_version, geometry=rwkv_geometry, ftype_key="data_type",
    why_not="current llama.cpp runs RWKV-6 and RWKV-7 only, not the RWKV-4/5 that rwkv.cpp files hold",
)
