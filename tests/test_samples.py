"""Sample models: GGUF ones load and generate in real llama.cpp; GGJT v3 ones hold the same model."""

from __future__ import annotations

import hashlib
import struct

import pytest
from gguf.constants import Keys

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.formats.legacy import read_legacy
from ggufkit.families.llama import legacy_to_gguf
from ggufkit.quantize.quant_types import quant_type
from tests.conftest import GGJT_FTYPES


def _digest(path, offset, nbytes):
    with open(path, "rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(nbytes)).hexdigest()


@pytest.mark.parametrize("type_name", ["f32", "f16", "q8_0", "q4_k_m"])
def test_gguf_sample_loads_and_generates(samples, type_name):
    import llama_cpp

    path = samples.gguf(type_name)
    g = read_gguf(path)
    assert g.kv[Keys.General.FILE_TYPE] == quant_type(type_name).ftype
    llm = llama_cpp.Llama(str(path), n_ctx=128, n_threads=2, verbose=False)
    tokens = llm.tokenize(b"hello the world", add_bos=False)
    assert len(tokens) == 3  # "▁hello", "▁the", "▁world" are pieces of the generated vocabulary
    assert llm.detokenize(tokens) == b" hello the world"
    out = llm("hello the", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] == 8


def test_ggjt3_header_bytes(samples):
    with open(samples.ggjt3("f16"), "rb") as f:
        head = f.read(4 * 9)
    assert head[:4] == b"tjgg"
    assert struct.unpack("<8I", head[4:]) == (3, 512, 256, 256, 4, 2, 64, 1)


@pytest.mark.parametrize("type_name", GGJT_FTYPES)
def test_ggjt3_sample_reads_back(samples, type_name):
    src, legacy = samples.gguf(type_name), samples.ggjt3(type_name)
    g, m = read_gguf(src), read_legacy(legacy)
    assert (m.container, m.version) == ("GGJT", 3)
    hp = m.hparams
    assert tuple(hp[k] for k in ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot")) == (512, 256, 256, 4, 2, 64)
    assert hp["ftype"] == quant_type(type_name).ftype == g.kv[Keys.General.FILE_TYPE]
    # the vocabulary as the pre-GGUF convert.py wrote SentencePiece pieces
    assert m.vocab[0] == (" \u2047 ".encode(), 0.0)
    assert m.vocab[1] == (b"", 0.0) and m.vocab[2] == (b"", 0.0)
    assert m.vocab[3 + 0x41] == (b"A", 0.0)
    assert m.vocab[-1] == (b"<pad>", -1000.0)
    texts = [t for t, _ in m.vocab]
    assert b" the" in texts and not any("\u2581".encode() in t for t in texts)
    # the same tensors, in the legacy order, with the same types, shapes and bytes
    names = legacy_to_gguf(2)
    assert [t.name for t in m.tensors] == list(names)
    by_name = {t.name: t for t in g.tensors}
    for t in m.tensors:
        s = by_name[names[t.name]]
        assert (t.ggml_type, t.shape, t.nbytes) == (s.ggml_type, s.shape, s.nbytes)
        assert t.offset % 32 == 0
        assert _digest(legacy, t.offset, t.nbytes) == _digest(src, s.offset, s.nbytes)
    assert m.tensors[-1].offset + m.tensors[-1].nbytes == m.file_size


def test_sample_cli_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "m.gguf"
    assert cli("sample", out).code == 0
    before = out.read_bytes()
    r = cli("sample", out, "--seed", "1")
    assert r.code == 2 and "--force" in r.err
    assert out.read_bytes() == before
    assert cli("sample", out, "--seed", "1", "--force").code == 0
    assert out.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]


@pytest.mark.parametrize("size", ["tiny", "small", "medium"])
def test_every_size_can_be_k_quantized_and_exported_to_ggjt3(size):
    """Checked without writing the model (medium is ~4 GB of F32): k-quants need rows that are multiples of
    256, pre-GGUF llama.cpp must be able to derive n_ff from an n_mult, and the vocabulary must build."""
    from ggufkit.samples.model import SIZES
    from ggufkit.samples.vocab import build_vocab

    spec = SIZES[size]
    assert spec.n_mult > 0 and spec.n_embd % spec.n_head == 0 and spec.n_head_kv == spec.n_head  # GGJT v3: no GQA
    for name, shape in spec.shapes():
        if len(shape) == 2:
            assert shape[1] % 256 == 0, (name, shape)
    tokens, scores, types = build_vocab(spec.n_vocab)
    assert len(tokens) == len(set(tokens)) == len(scores) == len(types) == spec.n_vocab
