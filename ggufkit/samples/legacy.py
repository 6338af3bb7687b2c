"""Export a LLaMA GGUF as a legacy GGJT v3 file, as pre-GGUF llama.cpp would have saved the same model."""

from __future__ import annotations

import mmap
from pathlib import Path

from gguf.constants import Keys

from ggufkit.converters.vocab import gguf_to_legacy as vocab_to_legacy
from ggufkit.errors import BadInputError
from ggufkit.formats.gguf_file import read_gguf
from ggufkit.formats.legacy import LegacyHparams
from ggufkit.formats.legacy_writer import write_legacy
from ggufkit.formats.llama_names import gguf_to_legacy
from ggufkit.formats.types import LEGACY_FTYPES, LEGACY_TENSOR_TYPES
from ggufkit.samples.model import SampleSpec


def export_legacy(src: Path, out: Path, container: str = "GGJT", version: int | None = 3) -> None:
    """`container`/`version` other than GGJT v3 only relabel the file: tensor data is not repacked
    into the older block layouts, so use them with F32/F16 sources (as tests of readers do)."""
    g = read_gguf(src)
    n_layer = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    n_embd = g.arch_kv(Keys.LLM.EMBEDDING_LENGTH)
    n_head = g.arch_kv(Keys.Attention.HEAD_COUNT)
    n_ff = g.arch_kv(Keys.LLM.FEED_FORWARD_LENGTH)
    ftype = g.kv.get(Keys.General.FILE_TYPE)
    if g.architecture != "llama" or ftype not in LEGACY_FTYPES:
        raise BadInputError(f"only LLaMA files of a GGJT-era file type export to GGJT v3 (ftype {ftype})", src)
    bad = [t.name for t in g.tensors if t.ggml_type not in LEGACY_TENSOR_TYPES]
    if bad:
        raise BadInputError(f"tensor {bad[0]} has a type GGJT v3 cannot hold", src)
    tokens = [t.encode("utf-8", "surrogateescape") for t in g.kv[Keys.Tokenizer.LIST]]
    vocab = vocab_to_legacy(tokens, list(g.kv[Keys.Tokenizer.SCORES]), list(g.kv[Keys.Tokenizer.TOKEN_TYPE]))
    n_mult = SampleSpec(len(tokens), n_embd, n_layer, n_head, n_head, n_ff).n_mult
    hp = LegacyHparams(len(tokens), n_embd, n_mult, n_head, n_layer, n_embd // n_head, ftype)
    names = gguf_to_legacy(n_layer)
    by_legacy = {names[t.name]: t for t in g.tensors}
    order = sorted(by_legacy, key=list(names.values()).index)
    with open(src, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm, open(out, "wb") as fp:
        view = memoryview(mm)
        try:
            tensors = (
                (n, by_legacy[n].ggml_type, by_legacy[n].shape, view[by_legacy[n].offset : by_legacy[n].offset + by_legacy[n].nbytes])
                for n in order
            )
            write_legacy(fp, hp, vocab, tensors, container, version)
        finally:
            view.release()
