"""Random-weight LLaMA models written as GGUF with gguf-py's GGUFWriter."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGMLQuantizationType as T, LlamaFileType

from ggufkit.families.llama import gguf_to_legacy, legacy_names
from ggufkit.samples.stream import Dest, Tensor, f16_rows, f32_rows, fill, random_rows
from ggufkit.samples.vocab import build_vocab


@dataclass(frozen=True)
class SampleSpec:
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    context_length: int = 2048
    rms_eps: float = 1e-5

    @property
    def n_mult(self) -> int:
        """The n_mult from which pre-GGUF llama.cpp derives this n_ff (it checks tensor shapes against it)."""
        raw = 2 * (4 * self.n_embd) // 3
        if self.n_ff < raw:
            raise ValueError(f"n_ff {self.n_ff} is below what pre-GGUF llama.cpp can express for n_embd {self.n_embd}")
        for mult in (256, 128, 64, 32, self.n_ff):
            if (raw + mult - 1) // mult * mult == self.n_ff:
                return mult
        raise AssertionError("unreachable: n_mult = n_ff always works")

    def shapes(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """(GGUF name, numpy shape) in the order the legacy converter wrote tensors."""
        head_dim = self.n_embd // self.n_head
        kv = self.n_head_kv * head_dim
        e, f = self.n_embd, self.n_ff
        per_layer = {
            "attn_q": (e, e), "attn_k": (kv, e), "attn_v": (kv, e), "attn_output": (e, e), "attn_norm": (e,),
            "ffn_gate": (f, e), "ffn_down": (e, f), "ffn_up": (f, e), "ffn_norm": (e,),
        }
        to_gguf = {v: k for k, v in gguf_to_legacy(self.n_layer).items()}
        for legacy in legacy_names(self.n_layer):
            name = to_gguf[legacy]
            if name == "token_embd.weight" or name == "output.weight":
                yield name, (self.n_vocab, e)
            elif name == "output_norm.weight":
                yield name, (e,)
            else:
                yield name, per_layer[name.split(".")[2]]


# k-quants need every row length to be a multiple of 256, so all widths are.
SIZES = {
    "tiny": SampleSpec(n_vocab=512, n_embd=256, n_layer=2, n_head=4, n_head_kv=4, n_ff=768),
    "small": SampleSpec(n_vocab=4096, n_embd=1024, n_layer=8, n_head=16, n_head_kv=16, n_ff=2816),
    # ~1B parameters with a real-sized vocabulary: per-token costs outside the layers (the logit row,
    # sampling, Python) weigh as they do on real models; too big for CI, made for GPU measurements
    "medium": SampleSpec(n_vocab=32000, n_embd=2048, n_layer=16, n_head=16, n_head_kv=16, n_ff=5632),
    # LLaMA-7B's shapes (6.7 B parameters: 13.5 GB at F16, 3.9 GB as Q4_0): convert, inspect and run at
    # the size people used; written as a stream like the others (issue 27). Its ffn rows (11008) are
    # not a multiple of 256, as in the real model.
    "7b": SampleSpec(n_vocab=32000, n_embd=4096, n_layer=32, n_head=32, n_head_kv=32, n_ff=11008),
}


def write_gguf(path: Path, spec: SampleSpec, f16: bool, seed: int = 0, name: str = "ggufkit-sample",
               chat_template: str | None = None, on_progress: Callable[[int], None] | None = None) -> None:
    """Random weights (std 0.02, norms 1) at F32 or mostly-F16 (1-D norms stay F32, as llama.cpp does),
    streamed: gguf-py writes the header, the data follows a slice at a time (stream.fill)."""
    tensors = [Tensor(n, T.F16 if f16 and len(shape) == 2 else T.F32, tuple(reversed(shape)),
                      shape[-1] * (2 if f16 and len(shape) == 2 else 4)) for n, shape in spec.shapes()]
    offsets, size = write_header(path, spec, f16, tensors, seed, name, chat_template)
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        targets = {t.name: (Dest(((fd, off),), None, t.rows, t.row_bytes), f16_rows if t.ggml_type == T.F16 else f32_rows)
                   for t, off in zip(tensors, offsets)}
        fill(random_rows(spec.shapes(), seed), targets, on_progress)
    finally:
        os.close(fd)


def write_header(path: Path, spec: SampleSpec, f16: bool, tensors: list[Tensor], seed: int = 0,
                 name: str = "ggufkit-sample", chat_template: str | None = None) -> tuple[list[int], int]:
    """The key/values and tensor table of a sample GGUF (gguf-py's GGUFWriter), nothing of the data;
    returns each tensor's data offset and the whole file's size (each tensor padded to the alignment,
    as GGUFWriter pads them)."""
    w = GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(LlamaFileType.MOSTLY_F16 if f16 else LlamaFileType.ALL_F32)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_rope_dimension_count(spec.n_embd // spec.n_head)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_layer_norm_rms_eps(spec.rms_eps)
    tokens, scores, types = build_vocab(spec.n_vocab, seed)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for t in tensors:
        w.add_tensor_info(t.name, tuple(reversed(t.ne)), np.dtype(np.float16 if t.ggml_type == T.F16 else np.float32),
                          t.nbytes, raw_dtype=T(t.ggml_type))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    offset = GGUFWriter.ggml_pad(w.fout[0].tell(), w.data_alignment)
    w.close()
    offsets = []
    for t in tensors:
        offsets.append(offset)
        offset += GGUFWriter.ggml_pad(t.nbytes, w.data_alignment)
    return offsets, offset
