"""What `inspect` reports about a model file, as plain data with stable keys."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray, jsonable
from ggufkit.formats.detect import detect, open_model
from ggufkit.formats.ggml_types import ftype_name
from ggufkit.formats.gguf_file import GgufFile

if TYPE_CHECKING:
    from ggufkit.formats.legacy import LegacyModel

MIB = 1 << 20


@dataclass
class MemoryEstimate:
    context: int
    weights_bytes: int
    kv_cache_bytes: int  # K and V, f16, every layer, the whole context
    margin_bytes: int  # compute buffers: logits of a 512-token batch + max(64 MiB, 5% of weights)
    total_bytes: int


@dataclass
class ModelSummary:
    path: str
    format: str  # "GGUF", "GGJT", "GGMF", "GGML"
    version: int | None
    file_size: int
    architecture: str | None
    name: str | None
    file_type: str | None
    file_type_id: int | None
    parameters: int
    hparams: dict[str, Any]
    vocab_size: int | None
    tokenizer: str | None
    special_tokens: dict[str, dict[str, Any]]
    chat_template: str | None
    tensors: list[dict[str, Any]]
    kv: dict[str, Any] = field(default_factory=dict)
    memory: MemoryEstimate | None = None
    family: str | None = None  # legacy files: the model family their header layout is
    quantization_version: int | None = None  # legacy files: 0, 1 or 2 (which block layouts)
    detection: list[str] = field(default_factory=list)  # how the format and family were told
    recognised: bool = True  # legacy files: the tensor table is the family's (else only the header is reported)
    convert: str | None = None  # legacy files: what `convert` does with it ("refused: why")
    shards: list[dict[str, Any]] = field(default_factory=list)  # a split model: path, tensors, bytes of each file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(path: str | os.PathLike[str], ctx: int | None = None) -> ModelSummary:
    return summarize_model(open_model(path), ctx)


def summarize_model(m: GgufFile | LegacyModel, ctx: int | None = None) -> ModelSummary:
    """The summary of a file already opened (and validated) by its reader."""
    s = _from_gguf(m) if isinstance(m, GgufFile) else _from_legacy(m)
    d = detect(m)
    s.family, s.quantization_version, s.detection = d.family, d.quantization_version, d.reasons
    if ctx is not None and s.recognised:  # no geometry, no estimate (a legacy file of no known shape)
        s.memory = _estimate(s, ctx)
    return s


def _tensor_rows(tensors, qversion: int = 2) -> list[dict[str, Any]]:
    from ggufkit.formats.legacy.blocks import era_type_name

    return [
        {"name": t.name, "shape": list(t.shape), "type": era_type_name(t.ggml_type) if qversion < 2 else t.type_name,
         "bytes": t.nbytes, "offset": t.offset}
        for t in tensors
    ]


def _from_gguf(g: GgufFile) -> ModelSummary:
    hp_keys = {
        "context_length": Keys.LLM.CONTEXT_LENGTH, "embedding_length": Keys.LLM.EMBEDDING_LENGTH,
        "block_count": Keys.LLM.BLOCK_COUNT, "feed_forward_length": Keys.LLM.FEED_FORWARD_LENGTH,
        "head_count": Keys.Attention.HEAD_COUNT, "head_count_kv": Keys.Attention.HEAD_COUNT_KV,
        "rope_dimension_count": Keys.Rope.DIMENSION_COUNT, "rope_freq_base": Keys.Rope.FREQ_BASE,
        "rms_norm_eps": Keys.Attention.LAYERNORM_RMS_EPS,
    }
    hparams = {k: jsonable(g.arch_kv(v)) for k, v in hp_keys.items() if g.arch_kv(v) is not None}
    tokens = g.kv.get(Keys.Tokenizer.LIST)
    tokens = tokens if isinstance(tokens, (list, StringArray)) else None
    special = {}
    for role, key in (("bos", Keys.Tokenizer.BOS_ID), ("eos", Keys.Tokenizer.EOS_ID),
                      ("unk", Keys.Tokenizer.UNK_ID), ("pad", Keys.Tokenizer.PAD_ID)):
        tid = g.kv.get(key)
        if isinstance(tid, int) and not isinstance(tid, bool):
            text = tokens[tid] if tokens is not None and 0 <= tid < len(tokens) else None
            special[role] = {"id": tid, "text": jsonable(text)}
    ftype = g.kv.get(Keys.General.FILE_TYPE)
    ftype = ftype if isinstance(ftype, int) else None
    template = g.kv.get(Keys.Tokenizer.CHAT_TEMPLATE)
    name = g.kv.get(Keys.General.NAME)
    return ModelSummary(
        path=g.path, format="GGUF", version=g.version, file_size=g.file_size, architecture=g.architecture,
        name=name if isinstance(name, str) else None, file_type=ftype_name(ftype), file_type_id=ftype,
        parameters=sum(t.n_elements for t in g.tensors), hparams=hparams,
        vocab_size=len(tokens) if tokens is not None else None,
        tokenizer=jsonable(g.kv.get(Keys.Tokenizer.MODEL)), special_tokens=special,
        chat_template=template if isinstance(template, str) else None,
        tensors=_tensor_rows(g.tensors), kv={k: jsonable(v) for k, v in g.kv.items()},
        shards=[{"path": f.path, "tensors": len(f.tensors), "bytes": f.file_size} for f in g.shards],
    )


# Legacy hparams under the names GGUF gives them (others keep their own names)
_LEGACY_HPARAM_NAMES = {"n_embd": "embedding_length", "n_layer": "block_count", "n_head": "head_count",
                        "n_rot": "rope_dimension_count", "n_ctx": "context_length", "n_head_kv": "head_count_kv",
                        "par_res": "use_parallel_residual", "alibi_bias_max": "max_alibi_bias",
                        "clip_qkv": "clamp_kqv"}
_TOKENIZERS = {"spm": "llama (SentencePiece)", "bpe": "gpt2 (byte-level BPE)", "none": None}


def _from_legacy(m: LegacyModel) -> ModelSummary:
    fam = m.family
    order = [k for k in _LEGACY_HPARAM_NAMES if k in m.hparams] + [k for k in m.hparams if k not in _LEGACY_HPARAM_NAMES]
    hparams: dict[str, Any] = {_LEGACY_HPARAM_NAMES.get(k, k): m.hparams[k] for k in order
                               if k not in (fam.n_vocab_key, fam.ftype_key)}
    try:
        hparams.update(fam.geometry(m, {"forced": True}).summary)
        recognised = True
    except BadInputError:
        recognised = False  # not the shape its header layout says: report what the header says, nothing derived
    texts = [t for t, _ in m.vocab]
    roles: tuple[tuple[str, int], ...] = ()
    if fam.tokenizer == "spm":
        roles = (("unk", 0), ("bos", 1), ("eos", 2))
    elif fam.bpe is not None and texts:
        roles = (("bos", fam.bpe.bos(texts)), ("eos", fam.bpe.eos(texts)))
    special = {role: {"id": i, "text": jsonable(texts[i].decode("utf-8", "replace"))}
               for role, i in roles if 0 <= i < len(texts)}
    return ModelSummary(
        path=m.path, format=m.container, version=m.version, file_size=m.file_size,
        architecture=fam.arch if recognised else None,
        name=None, file_type=ftype_name(m.ftype), file_type_id=m.ftype,
        parameters=sum(t.n_elements for t in m.tensors), hparams=hparams,
        vocab_size=len(m.vocab) or int(m.hparams[fam.n_vocab_key]),
        tokenizer=_TOKENIZERS[fam.tokenizer] if recognised else None, special_tokens=special, chat_template=None,
        tensors=_tensor_rows(m.tensors, m.qversion),
        kv={"hparams." + k: v for k, v in m.hparams.items()}, recognised=recognised,
        convert=None if not recognised else (f"refused: {fam.why_not}" if fam.arch is None else f"to GGUF {fam.arch}"),
    )


def _estimate(s: ModelSummary, ctx: int) -> MemoryEstimate:
    if ctx <= 0:
        raise BadInputError(f"--ctx must be positive, not {ctx}")
    weights = sum(t["bytes"] for t in s.tensors)
    h = s.hparams
    n_layer, n_embd, n_head = h.get("block_count", 0), h.get("embedding_length", 0), h.get("head_count", 0)
    n_head_kv = h.get("head_count_kv", n_head)
    n_embd_kv = n_embd // n_head * n_head_kv if n_head else 0
    kv = 2 * n_layer * ctx * n_embd_kv * 2
    margin = (s.vocab_size or 0) * 512 * 4 + max(64 * MIB, weights // 20)
    return MemoryEstimate(ctx, weights, kv, margin, weights + kv + margin)
