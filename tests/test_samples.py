"""Sample models: GGUF ones load and generate in real llama.cpp; GGJT v3 ones hold the same model."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
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


DIGESTS = json.loads((Path(__file__).parent / "fixtures" / "sample_digests.json").read_text())


def _sha(*paths) -> str | list[str]:
    d = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    return d[0] if len(d) == 1 else d


@pytest.mark.parametrize("key", [k for k in DIGESTS if not k.startswith("_")])
def test_streamed_samples_keep_the_whole_model_writers_bytes(tmp_path, monkeypatch, key):
    """Every sample is now drawn, encoded and written a slice at a time by several threads; slices of 1000
    values (tensors cut mid-row-block, many jobs in flight) must still give the bytes of the writers that
    held whole models (digests recorded from them)."""
    from ggufkit.samples import stream
    from ggufkit.samples.make import make_sample

    monkeypatch.setattr(stream, "CHUNK_VALUES", 1000)
    out = tmp_path / "m.bin"
    if key.startswith("parts"):  # "parts4 GGJT 1 q4_0": parts, container, version, type
        kind, container, version, type_name = key.split()
        parts = int(kind.removeprefix("parts"))
        make_sample(out, type_name, {"GGJT": f"ggjt{version}", "GGMF": "ggmf"}[container], "tiny", parts=parts)
        assert _sha(out, *[f"{out}.{k}" for k in range(1, parts)]) == DIGESTS[key]
    else:  # "tiny ggjt1 q4_0 [seedN]"
        _, fmt, type_name, *seed = key.split()
        make_sample(out, type_name, fmt, "tiny", seed=int(seed[0].removeprefix("seed")) if seed else 0)
        assert _sha(out) == DIGESTS[key]


@pytest.mark.parametrize("fmt", ["gguf", "ggjt3"])
def test_llama_quantized_sample_is_what_llama_cpp_writes(samples, tmp_path, fmt):
    """A sample quantized by llama.cpp is made from a proxy's plan and ggml_quantize_chunk: byte for byte what
    llama.cpp's quantizer writes from the whole F32 model (the way samples were made before)."""
    from ggufkit.quantize.quant_types import quant_type
    from ggufkit.quantize.quantizer import quantize_file
    from ggufkit.samples.legacy import export_legacy
    from ggufkit.samples.make import make_sample

    whole = tmp_path / "whole.gguf"
    quantize_file(samples.gguf("f32"), whole, quant_type("q4_k_m"))
    if fmt == "ggjt3":
        export_legacy(whole, tmp_path / "whole.bin")
        whole = tmp_path / "whole.bin"
    out = tmp_path / f"streamed.{'gguf' if fmt == 'gguf' else 'bin'}"
    make_sample(out, "q4_k_m", fmt, "tiny")
    assert out.read_bytes() == whole.read_bytes()


# Forks the command from a fresh, small interpreter and prints its peak RSS: Linux carries the high-water
# mark of the process that forks into the child at exec (tests/measure.py), and pytest grows past 1 GB.
_PEAK = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"
         "_, status, usage = os.wait4(pid, 0)\nprint(usage.ru_maxrss * 1024)\nsys.exit(os.waitstatus_to_exitcode(status))")


def test_sample_memory_does_not_grow_with_the_model(tmp_path):
    """The small F16 sample is 222 MB (its F32 values 443 MB, which the first writer held whole); streamed, the
    writer's peak RSS is its imports and a few slices."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "ggufkit", "sample", str(tmp_path / "s.gguf"),
                        "--size", "small"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.gguf").stat().st_size > 220e6
    peak = int(r.stdout.split()[-1])
    assert peak < 150e6, peak


def test_7b_has_llama_7b_shapes_and_splits_as_the_bench_needs():
    """The 7b size is LLaMA-7B by shape arithmetic (6 738 415 616 parameters; 13.5 GB at F16, 4.2 GB as GGJT v1
    Q4_0); two parts cut along whole blocks for the era types, and k-quants refuse to (11008 / 2 is not a
    multiple of 256), before anything is written."""
    from ggufkit.errors import BadInputError
    from ggufkit.families.llama import gguf_to_legacy
    from ggufkit.samples.legacy import check_split, era_type, legacy_tensor
    from ggufkit.samples.model import SIZES

    spec = SIZES["7b"]
    names = gguf_to_legacy(spec.n_layer)
    shapes = {names[n]: s for n, s in spec.shapes()}
    assert sum(np.prod(s) for s in shapes.values()) == 6_738_415_616
    assert shapes["layers.31.feed_forward.w2.weight"] == (4096, 11008) and shapes["tok_embeddings.weight"] == (32000, 4096)
    assert spec.n_mult == 256  # pre-GGUF llama.cpp derives n_ff 11008 from it

    def tensors(container, version, type_name):
        t, _, _ = era_type(container, version, type_name)
        return [legacy_tensor(n, t if len(s) == 2 else 0, tuple(reversed(s)), container, version) for n, s in shapes.items()]

    q4 = tensors("GGJT", 1, "q4_0")
    assert sum(t.nbytes for t in q4) == 4_212_408_320
    f16 = tensors("GGMF", 1, "f16")
    assert sum(t.nbytes for t in f16) == 13_477_363_712
    for ts, container, version in ((q4, "GGJT", 1), (f16, "GGMF", 1)):
        assert set(check_split(ts, 2, container, version).values()) == {None, 0, 1}
    k = [legacy_tensor(n, 12 if len(s) == 2 else 0, tuple(reversed(s)), "GGJT", 3) for n, s in shapes.items()]
    with pytest.raises(BadInputError, match="do not split into 2 parts of whole 256-value Q4_K blocks"):
        check_split(k, 2, "GGJT", 3)


@pytest.mark.parametrize("args,message", [
    (["--family", "gpt2", "--size", "small"], "--size does not apply to --family samples"),
    (["--family", "gpt2", "--format", "ggml", "--parts", "2"], "--format and --parts do not apply to --family samples"),
    (["--family", "gpt2", "--name-gguf"], "a gpt2 sample is a GGML-era file, not GGUF"),
    (["--format", "ggjt1", "--name-gguf"], "a ggjt1 file is not GGUF"),
    (["-t", "q4_2", "--format", "ggjt3"], "q4_2 exists only in GGJT v1 files (--format ggjt1)"),
    (["--parts", "2"], "GGUF files are split with llama-gguf-split"),
])
def test_sample_refuses_what_does_not_apply(cli, tmp_path, args, message):
    """Issue 26 item 11: nothing is ignored without a word, and no GGML-era file is named .gguf."""
    from tests.conftest import assert_clean_error

    out = tmp_path / ("m.gguf" if "--name-gguf" in args else "m.bin")
    assert_clean_error(cli("sample", out, *[a for a in args if a != "--name-gguf"]), 2, message)
    assert list(tmp_path.iterdir()) == []
