"""Samples quantized by llama.cpp, streamed: llama.cpp says what it would write, ggml writes the rows.

llama.cpp's quantizer (llama_model_quantize) picks each tensor's type from the file type, its name, its
layer, the model's hparams and whether its rows fit that type's blocks, never from its values or its
number of rows. So it is run on a proxy: the sample's own header and tensor names, each 2-D tensor cut
to 2 rows of its real length (a few MB at 7B, its data zeros left as holes in the file; `_proxy`). Its output gives the key/values exactly
as llama.cpp writes them, the tensor order and every tensor's type; the real rows are then quantized by
the same function llama.cpp calls per row (ggml_quantize_chunk), so the file is byte for byte what
quantizing a whole F32 model would give, without the 27 GB F32 model on disk (tests/test_samples.py
compares the two ways).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGMLQuantizationType as T

from ggufkit.quantize.quant_types import QuantType
from ggufkit.samples.model import SampleSpec, write_header
from ggufkit.samples.stream import Dest, Encoder, Tensor, f32_rows, fill, random_rows

PROXY_ROWS = 2  # a 2-D tensor stays 2-D (ggml_n_dims) with 2 rows


@dataclass(frozen=True)
class QuantPlan:
    kv: bytes  # the key/value section as llama.cpp wrote it
    n_kv: int
    types: dict[str, int]  # GGUF tensor name -> ggml type, in llama.cpp's tensor order
    ftype: int  # general.file_type


def plan(spec: SampleSpec, qtype: QuantType, work: Path, seed: int = 0) -> QuantPlan:
    """What llama.cpp's quantizer writes for this sample at `qtype` (runs it on a proxy in `work`)."""
    from ggufkit.quantize.quantizer import quantize_file

    proxy, out = work / "proxy.gguf", work / "proxy-quantized.gguf"
    tensors = [_proxy(n, s) for n, s in spec.shapes()]
    _, size = write_header(proxy, spec, False, tensors, seed)
    os.truncate(proxy, size)  # zeros, as a hole: nothing to draw or store
    quantize_file(proxy, out, qtype)
    r = GGUFReader(out)
    kv_start = 4 + 4 + 8 + 8  # magic, version, tensor count, key/value count
    kv = bytes(r.data[kv_start:r.tensors[0].field.offset])
    n_kv = int(r.fields["GGUF.kv_count"].parts[0][0])
    types = {t.name: int(t.tensor_type) for t in r.tensors}
    ftype = int(r.fields["general.file_type"].parts[-1][0])
    del r
    os.unlink(proxy)
    os.unlink(out)
    return QuantPlan(kv, n_kv, types, ftype)


def _proxy(name: str, shape: tuple[int, ...]) -> Tensor:
    """A tensor of the proxy: 1-D ones whole; 2-D ones 2 rows of their real length, but the token
    embeddings, whose rows must number the vocabulary's (formats/consistency.py), keep them and are cut
    to gcd(length, 256) values a row instead: every ggml block size divides 256, so the rows fit the
    same types' blocks as the real ones (all llama.cpp asks of a row's length)."""
    if len(shape) == 1:
        return Tensor(name, T.F32, shape, 4 * shape[0])
    rows, n = shape
    if name == "token_embd.weight":
        n = math.gcd(n, 256)
    else:
        rows = PROXY_ROWS
    return Tensor(name, T.F32, (n, rows), 4 * n)


def planned_tensors(spec: SampleSpec, p: QuantPlan) -> dict[str, Tensor]:
    """The sample's tensors at the plan's types, by GGUF name, in llama.cpp's order."""
    shapes = dict(spec.shapes())
    return {name: Tensor(name, t, tuple(reversed(shapes[name])), row_bytes(t, shapes[name][-1]))
            for name, t in p.types.items()}


def row_bytes(ggml_type: int, n: int) -> int:
    block, size = GGML_QUANT_SIZES[T(ggml_type)]
    return n // block * size


def encoder(ggml_type: int) -> Encoder:
    """float32 rows -> rows of `ggml_type`, as llama.cpp's quantizer makes them (F32 kept as is)."""
    if ggml_type == T.F32:
        return f32_rows
    from ggufkit.converters.requantize import quantize_rows

    return lambda x: quantize_rows(x, T(ggml_type))


def write_skeleton(fd: int, p: QuantPlan, tensors: dict[str, Tensor]) -> tuple[dict[str, int], int]:
    """The GGUF header llama.cpp writes (its key/values, then name, dims, type and offset of each tensor),
    at the start of `fd`; returns each tensor's data offset and the file's size (every tensor padded to
    the alignment, the last one too, as llama.cpp pads them)."""
    align = GGUF_DEFAULT_ALIGNMENT
    infos, offsets, offset = [], {}, 0
    for t in tensors.values():
        raw = t.name.encode()
        infos.append(struct.pack(f"<Q{len(raw)}sI{len(t.ne)}QIQ", len(raw), raw, len(t.ne), *t.ne, t.ggml_type, offset))
        offsets[t.name] = offset
        offset += -(-t.nbytes // align) * align
    head = struct.pack("<IIQQ", GGUF_MAGIC, 3, len(tensors), p.n_kv) + p.kv + b"".join(infos)
    start = -(-len(head) // align) * align
    os.pwrite(fd, head + b"\0" * (start - len(head)), 0)
    return {n: start + o for n, o in offsets.items()}, start + offset


def write_gguf(path: Path, spec: SampleSpec, p: QuantPlan, seed: int = 0,
               on_progress: Callable[[int], None] | None = None) -> None:
    """The sample as llama.cpp's quantizer would have written it from the whole F32 model."""
    tensors = planned_tensors(spec, p)
    fd = os.open(path, os.O_RDWR)
    try:
        offsets, size = write_skeleton(fd, p, tensors)
        os.ftruncate(fd, size)
        targets = {n: (Dest(((fd, offsets[n]),), None, t.rows, t.row_bytes), encoder(t.ggml_type))
                   for n, t in tensors.items()}
        fill(random_rows(spec.shapes(), seed), targets, on_progress)
    finally:
        os.close(fd)
