"""What a legacy LLaMA file implies beyond its 7 hparams: n_ff and n_head_kv come from tensor shapes."""

from __future__ import annotations

from dataclasses import dataclass

from ggufkit.errors import BadInputError
from ggufkit.formats.legacy import LegacyModel
from ggufkit.formats.llama_names import LEGACY_GLOBAL, LEGACY_LAYER, legacy_names


@dataclass(frozen=True)
class LlamaShape:
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head_dim: int


def llama_shape(model: LegacyModel, gqa: int | None = None) -> LlamaShape:
    """Derive and check the LLaMA geometry; `gqa` (n_head / n_head_kv) overrides the inferred value."""
    hp, path = model.hparams, model.path
    if hp.n_embd % hp.n_head:
        raise BadInputError(f"n_head {hp.n_head} does not divide n_embd {hp.n_embd}", path)
    head_dim = hp.n_embd // hp.n_head
    needed = len(LEGACY_GLOBAL) + len(LEGACY_LAYER) * hp.n_layer  # before listing names: n_layer may be 2^32-1
    if needed > len(model.tensors):
        raise BadInputError(f"not a LLaMA-family file: n_layer {hp.n_layer} needs {needed} tensors, "
                            f"the file has {len(model.tensors)}", path)
    missing = [n for n in legacy_names(hp.n_layer) if model.tensor(n) is None]
    if missing:
        raise BadInputError(f"not a LLaMA-family file: tensor {missing[0]!r} is missing", path)
    w1 = model.tensor("layers.0.feed_forward.w1.weight")
    wk = model.tensor("layers.0.attention.wk.weight")
    assert w1 is not None and wk is not None
    n_ff = w1.shape[1]
    if gqa is not None:
        if gqa <= 0 or hp.n_head % gqa:
            raise BadInputError(f"--gqa {gqa} does not divide n_head {hp.n_head}", path)
        n_head_kv = hp.n_head // gqa
    else:
        if wk.shape[1] % head_dim:
            raise BadInputError(f"K projection width {wk.shape[1]} is not a multiple of the head size {head_dim}", path)
        n_head_kv = wk.shape[1] // head_dim
    if n_head_kv == 0 or hp.n_head % n_head_kv:
        raise BadInputError(f"n_head_kv {n_head_kv} does not divide n_head {hp.n_head}", path)
    shape = LlamaShape(hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, n_head_kv, n_ff, head_dim)
    _check_shapes(model, shape)
    return shape


def _check_shapes(model: LegacyModel, s: LlamaShape) -> None:
    kv = s.n_head_kv * s.head_dim
    want = {
        "tok_embeddings.weight": (s.n_embd, s.n_vocab), "norm.weight": (s.n_embd,), "output.weight": (s.n_embd, s.n_vocab),
    }
    per_layer = {
        "attention.wq.weight": (s.n_embd, s.n_embd), "attention.wk.weight": (s.n_embd, kv),
        "attention.wv.weight": (s.n_embd, kv), "attention.wo.weight": (s.n_embd, s.n_embd),
        "attention_norm.weight": (s.n_embd,), "ffn_norm.weight": (s.n_embd,),
        "feed_forward.w1.weight": (s.n_embd, s.n_ff), "feed_forward.w2.weight": (s.n_ff, s.n_embd),
        "feed_forward.w3.weight": (s.n_embd, s.n_ff),
    }
    for i in range(s.n_layer):
        want.update({f"layers.{i}.{k}": v for k, v in per_layer.items()})
    for name, shape in want.items():
        t = model.tensor(name)
        assert t is not None
        if t.shape != shape:
            raise BadInputError(f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)}", model.path)
    extra = [t.name for t in model.tensors if t.name not in want]
    if extra:
        raise BadInputError(f"unexpected tensor {extra[0]!r} for a LLaMA file with {s.n_layer} layers", model.path)
