"""Export a LLaMA GGUF as a legacy file, as pre-GGUF llama.cpp would have saved the same model.

Two ways: `export_legacy` relabels a GGUF's tensors into a container (every type for GGJT v3, whose
blocks are today's; F32/F16 for the older containers); `quantize_legacy` writes an older era's
quantized file from an F32 GGUF with that era's own quantizer (samples/old_quants.py) and block layout.
Either can cut the model into parts, as the first converters wrote 13B and larger models.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType as T, Keys

from ggufkit.converters.spm_vocab import gguf_to_legacy as vocab_to_legacy
from ggufkit.errors import BadInputError
from ggufkit.families import llama
from ggufkit.formats.ggml_types import LEGACY_FTYPES
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.formats.legacy import blocks
from ggufkit.samples import old_quants
from ggufkit.samples.legacy_writer import write_legacy
from ggufkit.samples.model import SampleSpec

Tensor = tuple[str, int, tuple[int, ...], "memoryview | bytes"]


def export_legacy(src: Path, out: Path, container: str = "GGJT", version: int | None = 3, parts: int = 1) -> None:
    """The GGUF's tensors as they are, in a legacy container (older containers: F32/F16 files only)."""
    g = read_gguf(src)
    qversion = llama.quant_version(container, version, {})
    ftype = g.kv.get(Keys.General.FILE_TYPE)
    if g.architecture != "llama" or ftype not in LEGACY_FTYPES:
        raise BadInputError(f"only LLaMA files of a GGML-era file type export to legacy files (ftype {ftype})", src)
    for t in g.tensors:
        lay = blocks.layout(qversion, t.ggml_type)
        if lay is None or lay.today != t.ggml_type or lay.repack is not None:
            raise BadInputError(f"tensor {t.name} ({t.type_name}) is not stored as {container} "
                                f"{version or ''} stores it: use quantize_legacy", src)
    with open(src, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            tensors = [(n, t.ggml_type, t.shape, view[t.offset: t.offset + t.nbytes]) for n, t in _in_legacy_order(g)]
            _write(g, out, int(ftype), tensors, container, version, parts)
        finally:
            del tensors
            view.release()


def quantize_legacy(src: Path, out: Path, container: str, version: int | None, type_name: str, parts: int = 1) -> None:
    """An F32 GGUF quantized to `type_name` (an era type: q4_0 … q8_0, q4_2, q4_3, f16, f32) exactly as
    that container version's `quantize` tool did: every 2-D tensor quantized, 1-D tensors kept F32."""
    g = read_gguf(src)
    qversion = llama.quant_version(container, version, {})
    target = {"q4_2": blocks.Q4_2, "q4_3": blocks.Q4_3}.get(type_name.lower())
    if target is None:
        target = T.__members__.get(type_name.upper(), -1)
    lay = blocks.layout(qversion, target)
    quantizer = old_quants.ERAS.get((container, version), {}).get(target)
    if lay is None or (quantizer is None and target not in (T.F32, T.F16)):
        known = ", ".join(blocks.era_type_name(t).lower() for t in [T.F32, T.F16, *old_quants.ERAS.get((container, version), {})])
        raise BadInputError(f"{container}{f' v{version}' if version else ''} files had no {type_name} type (choose from {known})")
    if any(t.ggml_type != T.F32 for t in g.tensors):
        raise BadInputError("quantize_legacy needs an F32 source", src)
    with open(src, "rb") as f:
        def data() -> Iterator[Tensor]:
            for name, t in _in_legacy_order(g):
                f.seek(t.offset)
                x = np.fromfile(f, np.float32, t.n_elements)
                if len(t.shape) == 1 or target == T.F32:
                    yield name, int(T.F32), t.shape, x.tobytes()
                elif target == T.F16:
                    yield name, int(T.F16), t.shape, x.astype(np.float16).tobytes()
                else:
                    d, m, q = quantizer(x.reshape(-1, lay.block))
                    yield name, int(target), t.shape, lay.pack(d, m, q).tobytes()

        _write(g, out, old_quants.FTYPES[target], list(data()), container, version, parts)


def _in_legacy_order(g: GgufFile) -> list[tuple[str, object]]:
    n_layer = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    names = llama.gguf_to_legacy(n_layer)
    by_legacy = {names[t.name]: t for t in g.tensors}
    return [(n, by_legacy[n]) for n in llama.legacy_names(n_layer)]


def _write(g: GgufFile, out: Path, ftype: int, tensors: list[Tensor], container: str, version: int | None,
           parts: int) -> None:
    n_embd = g.arch_kv(Keys.LLM.EMBEDDING_LENGTH)
    n_head = g.arch_kv(Keys.Attention.HEAD_COUNT)
    n_layer = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    tokens = [t.encode("utf-8", "surrogateescape") for t in g.kv[Keys.Tokenizer.LIST]]
    vocab = vocab_to_legacy(tokens, list(g.kv[Keys.Tokenizer.SCORES]), list(g.kv[Keys.Tokenizer.TOKEN_TYPE]))
    n_mult = SampleSpec(len(tokens), n_embd, n_layer, n_head, n_head, g.arch_kv(Keys.LLM.FEED_FORWARD_LENGTH)).n_mult
    hp = {"n_vocab": len(tokens), "n_embd": n_embd, "n_mult": n_mult, "n_head": n_head, "n_layer": n_layer,
          "n_rot": n_embd // n_head, "ftype": ftype}
    qversion = llama.quant_version(container, version, {})
    with ExitStack() as stack:
        files = [stack.enter_context(open(out if k == 0 else f"{out}.{k}", "wb")) for k in range(parts)]
        for k, fp in enumerate(files):
            write_legacy(fp, llama.FAMILY, hp, vocab, (_slice(t, k, parts, qversion) for t in tensors),
                         container, version)


def _slice(t: Tensor, k: int, parts: int, qversion: int) -> Tensor:
    """Part k of `parts` of a tensor, cut as the first converters cut 13B+ checkpoints."""
    name, ggml_type, shape, data = t
    axis = llama.split_axis(name, len(shape))
    if parts == 1 or axis is None:
        return t
    lay = blocks.layout(qversion, ggml_type)
    assert lay is not None
    rows = np.frombuffer(data, np.uint8).reshape(-1, shape[0] // lay.block * lay.nbytes)
    new = list(shape)
    new[axis] //= parts
    if axis == 0:
        if new[0] % lay.block:
            raise BadInputError(f"{name}: rows of {shape[0]} values do not split into {parts} whole-block parts")
        w = rows.shape[1] // parts
        piece = rows[:, k * w:(k + 1) * w]
    else:
        n = rows.shape[0] // parts
        piece = rows[k * n:(k + 1) * n]
    return name, ggml_type, tuple(new), np.ascontiguousarray(piece).tobytes()
