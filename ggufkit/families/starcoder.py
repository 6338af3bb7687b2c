"""StarCoder, SantaCoder, WizardCoder (GPTBigCode) as the ggml starcoder example wrote them.

The gpt-2 example's container and names (gpt2.py). GPTBigCode uses multi-query attention, but the
example's converter tiled the one K/V head n_head times ([Q | K x n_head | V x n_head]), so the file
holds n_head identical K/V heads: converted as they are (head_count_kv = n_head), which llama.cpp
computes exactly as the example's main did. A file with a single K/V head converts as multi-query.
"""

from __future__ import annotations

from typing import Any

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.families import gpt2
from ggufkit.families.base import Bpe, Family, Geometry, ModelLike


def geometry(model: ModelLike, options: dict[str, Any]) -> Geometry:
    if not gpt2.starcoder_vocab(model.vocab) and not options.get("forced"):
        raise BadInputError("not a StarCoder file: its vocabulary does not start with <|endoftext|>", model.path)
    return gpt2.layout(model, "StarCoder", mqa=True)


FAMILY = Family(
    name="starcoder",
    title="StarCoder, SantaCoder, WizardCoder (ggml starcoder example)",
    arch="starcoder",
    containers=("GGML",),
    hparams=gpt2.HPARAMS,
    tokenizer="bpe",
    quant_version=gpt2.quant_version,
    geometry=geometry,
    vocab_count=True,
    bpe=Bpe(pre="starcoder", bos=lambda _t: 0, eos=lambda _t: 0),
    eps_key=Keys.Attention.LAYERNORM_EPS,
    config_keys=gpt2.GPT2_CONFIG,
    defaults={"eps": 1e-5, "context_length": 8192},
)
