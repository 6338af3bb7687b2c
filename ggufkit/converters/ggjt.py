"""Legacy GGJT v3 ("ggmlv3") LLaMA files -> GGUF, tensor bytes copied unchanged.

GGJT v3 block layouts equal today's ggml layouts, so only the container changes: hparams become GGUF
keys, the vocabulary gets its SentencePiece text and token types back, tensor names are mapped, and
tensor data is copied in the kernel. gguf-py's GGUFWriter writes the header, key/values and tensor
table; it can only write data it holds as arrays, so the data section is streamed here instead,
which keeps memory flat whatever the model size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.constants import GGUF_DEFAULT_ALIGNMENT, LlamaFileType

from ggufkit.converters import vocab as vocab_text
from ggufkit.converters.copy import copy_range
from ggufkit.converters.metadata import ConvertOptions, Resolved, resolve
from ggufkit.errors import BadInputError
from ggufkit.formats.detect import sniff
from ggufkit.formats.legacy import LegacyModel, read_legacy
from ggufkit.formats.legacy_llama import LlamaShape, llama_shape
from ggufkit.formats.llama_names import legacy_to_gguf
from ggufkit.formats.types import ftype_name
from ggufkit.fsutil import atomic_output, check_output

ProgressFn = Callable[[int], None]  # called with the number of bytes just written


@dataclass
class ConvertReport:
    input: str
    output: str
    file_type: str | None
    tensors: int
    bytes: int
    seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)  # what the legacy file lacked, and where it came from


def open_ggjt3(src: Path, options: ConvertOptions | None = None) -> tuple[LegacyModel, LlamaShape]:
    """Read and validate a convertible legacy file, with a clear error for every other kind."""
    if sniff(src) == "gguf":
        raise BadInputError("already a GGUF file: nothing to convert", src)
    m = read_legacy(src)
    if (m.container, m.version) != ("GGJT", 3):
        raise BadInputError(
            f"is {m.label}, whose quantized block layouts predate GGJT v3: re-quantize the original weights "
            "with llama.cpp from before August 2023 to get GGJT v3, or download a GGUF of the model",
            src,
        )
    return m, llama_shape(m, options.gqa if options else None)


def convert_ggjt(src: Path, out: Path, options: ConvertOptions | None = None, force: bool = False,
                 on_progress: ProgressFn | None = None) -> ConvertReport:
    options = options or ConvertOptions()
    started = time.perf_counter()
    m, shape = open_ggjt3(src, options)
    meta = resolve(options)
    if meta.n_head_kv is not None and options.gqa is None and meta.n_head_kv != shape.n_head_kv:
        raise BadInputError(
            f"config.json says {meta.n_head_kv} KV heads, the K projection holds {shape.n_head_kv}", src)
    check_output(out, [src], force)
    with atomic_output(out) as tmp:
        _write(m, shape, meta, options, src, tmp, on_progress)
        if options.verify:
            verify(src, tmp)
    total = sum(t.nbytes for t in m.tensors)
    return ConvertReport(
        str(src), str(out), ftype_name(m.hparams.ftype), len(m.tensors), total, time.perf_counter() - started,
        {"context_length": meta.context_length, "rms_norm_eps": meta.eps, "rope_freq_base": meta.rope_freq_base,
         "head_count_kv": shape.n_head_kv, "sources": meta.sources},
    )


def _write(m: LegacyModel, shape: LlamaShape, meta: Resolved, options: ConvertOptions, src: Path, tmp: Path,
           on_progress: ProgressFn | None) -> None:
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(options.name or src.name.split(".")[0])
    w.add_description(options.description or f"converted from legacy {m.label} {ftype_name(m.hparams.ftype)} by ggufkit")
    w.add_file_type(m.hparams.ftype)
    if m.hparams.ftype not in (LlamaFileType.ALL_F32, LlamaFileType.MOSTLY_F16):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(meta.context_length)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_rope_dimension_count(shape.head_dim)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_layer_norm_rms_eps(meta.eps)
    if meta.rope_freq_base is not None:
        w.add_rope_freq_base(meta.rope_freq_base)
    tokens, scores, types = vocab_text.legacy_to_gguf(m.vocab)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(vocab_text.UNK_ID)
    w.add_bos_token_id(vocab_text.BOS_ID)
    w.add_eos_token_id(vocab_text.EOS_ID)
    if options.metadata_dir is not None:
        gguf.SpecialVocab(options.metadata_dir, load_merges=False, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)
    names = legacy_to_gguf(shape.n_layer)
    for t in m.tensors:
        # GGUFWriter takes numpy (outermost-first) shapes and writes them reversed, i.e. ne0 first again
        w.add_tensor_info(names[t.name], tuple(reversed(t.shape)), np.dtype(np.float32), t.nbytes, raw_dtype=t.ggml_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    fout.flush()
    with open(src, "rb") as fin:
        dst = fout.fileno()
        for t in m.tensors:
            _pad(dst)
            copy_range(fin.fileno(), dst, t.offset, t.nbytes, on_progress)
    w.close()


def _pad(fd: int) -> None:
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    pad = -pos % GGUF_DEFAULT_ALIGNMENT
    if pad:
        os.write(fd, b"\0" * pad)


def verify(src: Path, out: Path) -> None:
    """Re-read the output and compare every tensor with the input: name, type, shape and bytes."""
    from ggufkit.formats.gguf_file import read_gguf

    m = read_legacy(src)
    g = read_gguf(out)
    names = legacy_to_gguf(m.hparams.n_layer)
    by_name = {t.name: t for t in g.tensors}
    if len(g.tensors) != len(m.tensors):
        raise BadInputError(f"verification failed: {len(g.tensors)} tensors written, {len(m.tensors)} read", out)
    with open(src, "rb") as a, open(out, "rb") as b:
        for t in m.tensors:
            o = by_name.get(names[t.name])
            if o is None or (o.ggml_type, o.shape, o.nbytes) != (t.ggml_type, t.shape, t.nbytes):
                raise BadInputError(f"verification failed: tensor {names[t.name]!r} differs in type or shape", out)
            for pos in range(0, t.nbytes, 1 << 24):
                n = min(1 << 24, t.nbytes - pos)
                if os.pread(a.fileno(), n, t.offset + pos) != os.pread(b.fileno(), n, o.offset + pos):
                    raise BadInputError(f"verification failed: tensor {names[t.name]!r} bytes differ", out)
