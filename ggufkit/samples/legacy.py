"""LLaMA files as pre-GGUF llama.cpp saved them, in one part or several, streamed like every sample.

`open_legacy` writes the skeleton of a legacy file (each part's header, vocabulary and tensor records)
and says where each tensor's rows go; the rows come from the random stream (samples/make.py) or from a
GGUF file: `export_legacy` relabels a GGUF's tensors into a container (every type for GGJT v3, whose
blocks are today's; F32/F16 for the older containers); `quantize_legacy` writes an older era's
quantized file from an F32 GGUF with that era's own quantizer (samples/old_quants.py) and block layout.
Parts are cut as the first converters cut 13B and larger models: one per checkpoint shard, every 2-D
tensor sliced along the family's split axis, the norms whole in each.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType as T, Keys

from ggufkit.converters.spm_vocab import gguf_to_legacy as vocab_to_legacy
from ggufkit.errors import BadInputError
from ggufkit.families import llama
from ggufkit.formats.ggml_types import LEGACY_FTYPES, TensorInfo
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.formats.legacy import blocks
from ggufkit.samples import old_quants
from ggufkit.samples.legacy_writer import write_header, write_record
from ggufkit.samples.model import SampleSpec
from ggufkit.samples.stream import CHUNK_VALUES, Dest, Encoder, Rows, Tensor, as_stored, f16_rows, f32_rows, fill

MAX_PARTS = 64  # as many as the reader accepts (formats/legacy/parts.py)
ERA_BLOCKS = 1024  # blocks an era's quantizer takes at a time (each a dozen numpy passes)


def hparams(n_vocab: int, n_embd: int, n_head: int, n_layer: int, n_ff: int, ftype: int) -> dict[str, int]:
    n_mult = SampleSpec(n_vocab, n_embd, n_layer, n_head, n_head, n_ff).n_mult
    return {"n_vocab": n_vocab, "n_embd": n_embd, "n_mult": n_mult, "n_head": n_head, "n_layer": n_layer,
            "n_rot": n_embd // n_head, "ftype": ftype}


def era_type(container: str, version: int | None, type_name: str) -> tuple[int, int, Encoder]:
    """(type of the 2-D tensors, header ftype, encoder of float32 rows) of `type_name` as that container
    version's `quantize` tool wrote it: f32, f16, or an era type (q4_0 ... q8_0, q4_2 and q4_3)."""
    qversion = llama.quant_version(container, version, {})
    era = old_quants.ERAS.get((container, version), {})
    target = {"q4_2": blocks.Q4_2, "q4_3": blocks.Q4_3}.get(type_name.lower())
    if target is None:
        target = T.__members__.get(type_name.upper(), -1)
    lay = blocks.layout(qversion, target)
    if target in (blocks.Q4_2, blocks.Q4_3) and (container, version) != ("GGJT", 1):
        raise BadInputError(f"{type_name} exists only in GGJT v1 files (--format ggjt1): it came in April 2023 "
                            "and was gone by GGJT v2")
    if lay is None or (target not in era and target not in (T.F32, T.F16)):
        known = ", ".join(blocks.era_type_name(t).lower() for t in [T.F32, T.F16, *era])
        raise BadInputError(f"{container}{f' v{version}' if version else ''} files had no {type_name} type "
                            f"(choose from {known})")
    if target in (T.F32, T.F16):
        return target, old_quants.FTYPES[target], f32_rows if target == T.F32 else f16_rows
    quantizer = era[target]

    def encode(x: np.ndarray) -> np.ndarray:
        values = x.reshape(-1, lay.block)
        out = np.empty((values.shape[0], lay.nbytes), np.uint8)
        for s in range(0, values.shape[0], ERA_BLOCKS):  # a slice that stays in the CPU's cache: 6x faster
            out[s:s + ERA_BLOCKS] = lay.pack(*quantizer(values[s:s + ERA_BLOCKS]))
        return out.reshape(x.shape[0], -1)

    return target, old_quants.FTYPES[target], encode


def open_legacy(paths: list[Path], hp: dict[str, int], vocab: list[tuple[bytes, float]], tensors: list[Tensor],
                container: str, version: int | None, stack: ExitStack) -> dict[str, Dest]:
    """Write the skeleton of a LLaMA legacy model in len(paths) parts (tensors by legacy name, whole
    shapes, in file order); returns where each tensor's rows go. The files are closed by `stack`."""
    parts = len(paths)
    splits = check_split(tensors, parts, container, version)
    offsets: dict[str, list[int]] = {t.name: [] for t in tensors}
    for path in paths:
        with open(path, "wb") as fp:
            write_header(fp, llama.FAMILY, hp, vocab, container, version)
            for t in tensors:
                ne, nbytes = _part(t, splits[t.name], parts)
                offset = write_record(fp, container, t.name, t.ggml_type, ne)
                offsets[t.name].append(offset)
                fp.seek(offset + nbytes)
            fp.truncate()  # the data is written later, in place
    fds = []
    for path in paths:
        fds.append(os.open(path, os.O_WRONLY))
        stack.callback(os.close, fds[-1])
    return {t.name: Dest(tuple(zip(fds, offsets[t.name])), splits[t.name], t.rows, t.row_bytes) for t in tensors}


def legacy_tensor(name: str, ggml_type: int, ne: tuple[int, ...], container: str, version: int | None) -> Tensor:
    """A tensor as a legacy file of that container version stores it (its era's block layout)."""
    lay = blocks.layout(llama.quant_version(container, version, {}), ggml_type)
    if lay is None:
        raise BadInputError(f"{container}{f' v{version}' if version else ''} files had no "
                            f"{blocks.era_type_name(ggml_type)} tensors ({name})")
    return Tensor(name, ggml_type, ne, ne[0] // lay.block * lay.nbytes)


def check_split(tensors: list[Tensor], parts: int, container: str, version: int | None) -> dict[str, int | None]:
    """Each tensor's split axis in a model of `parts` parts; refuses a tensor that does not cut into parts
    of whole rows and whole blocks."""
    qversion = llama.quant_version(container, version, {})
    return {t.name: _split(t, parts, qversion) for t in tensors}


def _split(t: Tensor, parts: int, qversion: int) -> int | None:
    axis = llama.split_axis(t.name, len(t.ne))
    if parts == 1 or axis is None:
        return axis
    lay = blocks.layout(qversion, t.ggml_type)
    assert lay is not None
    if t.ne[axis] % parts or (axis == 0 and t.ne[0] // parts % lay.block):
        what = f"rows of {t.ne[0]} values" if axis == 0 else f"{t.ne[1]} rows"
        blocks_of = f" of whole {lay.block}-value {lay.name} blocks" if axis == 0 else ""
        raise BadInputError(f"--parts {parts}: {t.name} has {what}, which do not split into {parts} parts{blocks_of}")
    return axis


def _part(t: Tensor, axis: int | None, parts: int) -> tuple[tuple[int, ...], int]:
    """The shape and bytes of one part's slice of `t`."""
    if axis is None:
        return t.ne, t.nbytes
    ne = list(t.ne)
    ne[axis] //= parts
    return tuple(ne), t.nbytes // parts


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
    _from_gguf(g, out, int(ftype), container, version, parts, lambda t: (t.ggml_type, as_stored), as_float=False)


def quantize_legacy(src: Path, out: Path, container: str, version: int | None, type_name: str, parts: int = 1) -> None:
    """An F32 GGUF quantized to `type_name` (an era type: q4_0 … q8_0, q4_2, q4_3, f16, f32) exactly as
    that container version's `quantize` tool did: every 2-D tensor quantized, 1-D tensors kept F32."""
    g = read_gguf(src)
    target, ftype, encode = era_type(container, version, type_name)
    if any(t.ggml_type != T.F32 for t in g.tensors):
        raise BadInputError("quantize_legacy needs an F32 source", src)
    _from_gguf(g, out, ftype, container, version, parts,
               lambda t: (T.F32, f32_rows) if len(t.shape) == 1 else (target, encode), as_float=True)


def _from_gguf(g: GgufFile, out: Path, ftype: int, container: str, version: int | None, parts: int,
               typed, as_float: bool) -> None:
    """`g` written as a legacy file; typed(tensor) -> (its type in the file, encoder of its rows)."""
    n_layer = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    names = llama.gguf_to_legacy(n_layer)
    by_legacy = {names[t.name]: t for t in g.tensors}
    order = [by_legacy[n] for n in llama.legacy_names(n_layer)]
    tokens = g.kv[Keys.Tokenizer.LIST]
    vocab = llama_vocab(tokens, list(g.kv[Keys.Tokenizer.SCORES]), list(g.kv[Keys.Tokenizer.TOKEN_TYPE]))
    hp = hparams(len(tokens), g.arch_kv(Keys.LLM.EMBEDDING_LENGTH), g.arch_kv(Keys.Attention.HEAD_COUNT), n_layer,
                 g.arch_kv(Keys.LLM.FEED_FORWARD_LENGTH), ftype)
    tensors, targets = [], {}
    for t in order:
        ggml_type, encode = typed(t)
        tensors.append(legacy_tensor(names[t.name], ggml_type, t.shape, container, version))
        targets[names[t.name]] = encode
    with ExitStack() as stack:
        paths = [out if k == 0 else Path(f"{out}.{k}") for k in range(parts)]
        dests = open_legacy(paths, hp, vocab, tensors, container, version, stack)
        with open(g.path, "rb") as f:
            fill(((names[t.name], _rows(f.fileno(), t, as_float)) for t in order),
                 {n: (dests[n], targets[n]) for n in dests})


def _rows(fd: int, t: TensorInfo, as_float: bool) -> Rows:
    """A GGUF tensor's rows a slice at a time: float32 values, or the bytes as stored."""
    rows = t.n_elements // t.shape[0]
    row = t.nbytes // rows
    step = max(1, CHUNK_VALUES * 4 // row)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        data = np.frombuffer(os.pread(fd, n * row, t.offset + start * row), np.uint8).reshape(n, row)
        yield start, data.view(np.float32) if as_float else data


def llama_vocab(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[bytes, float]]:
    """A GGUF-style LLaMA vocabulary as the pre-GGUF convert.py wrote it."""
    return vocab_to_legacy([t.encode("utf-8", "surrogateescape") for t in tokens], scores, types)
