"""`ggufkit convert`: GGJT v3 -> GGUF is exact, for every GGJT-era file type, and safe."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from gguf.constants import Keys

from ggufkit.formats.gguf_file import read_gguf
from tests.conftest import GGJT_FTYPES, assert_clean_error, writing_in

HPARAM_KEYS = [
    Keys.LLM.CONTEXT_LENGTH, Keys.LLM.EMBEDDING_LENGTH, Keys.LLM.BLOCK_COUNT, Keys.LLM.FEED_FORWARD_LENGTH,
    Keys.Attention.HEAD_COUNT, Keys.Attention.HEAD_COUNT_KV, Keys.Rope.DIMENSION_COUNT,
    Keys.Attention.LAYERNORM_RMS_EPS,
]


def _tensor_digests(path):
    g = read_gguf(path)
    out = {}
    with open(path, "rb") as f:
        for t in g.tensors:
            f.seek(t.offset)
            out[t.name] = (t.ggml_type, t.shape, hashlib.sha256(f.read(t.nbytes)).hexdigest())
    return g, out


def _greedy(path, n=12):
    """Token ids llama.cpp generates greedily from a fixed prompt (in a child, one model per process)."""
    code = (
        "import sys, llama_cpp\n"
        "llm = llama_cpp.Llama(sys.argv[1], n_ctx=128, n_threads=2, verbose=False)\n"
        "toks = llm.tokenize(b'hello the world')\n"
        "out = []\n"
        "for t in llm.generate(toks, temp=0.0, top_k=1):\n"
        "    out.append(t)\n"
        "    if len(out) == int(sys.argv[2]): break\n"
        "print(' '.join(map(str, toks + out)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path), str(n)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


@pytest.mark.parametrize("type_name", GGJT_FTYPES)
def test_exact_conversion(samples, cli, tmp_path, type_name):
    src_gguf, legacy = samples.gguf(type_name), samples.ggjt3(type_name)
    out = tmp_path / "out.gguf"
    r = cli("convert", legacy, "-o", out, "--eps", "1e-5")
    assert r.code == 0, r.err
    (a, ta), (b, tb) = _tensor_digests(src_gguf), _tensor_digests(out)
    assert ta == tb  # same names, types, shapes (ne0 first) and bytes
    for key in (Keys.Tokenizer.LIST, Keys.Tokenizer.TOKEN_TYPE, Keys.Tokenizer.BOS_ID, Keys.Tokenizer.EOS_ID,
                Keys.Tokenizer.UNK_ID, Keys.Tokenizer.MODEL, Keys.General.FILE_TYPE):
        av, bv = a.kv[key], b.kv[key]
        assert (list(av) if hasattr(av, "tolist") else av) == (list(bv) if hasattr(bv, "tolist") else bv), key
    assert list(a.kv[Keys.Tokenizer.SCORES]) == list(b.kv[Keys.Tokenizer.SCORES])
    for key in HPARAM_KEYS:
        assert a.kv[key.format(arch="llama")] == b.kv[key.format(arch="llama")], key


@pytest.mark.parametrize("type_name", ["f16", "q4_0", "q8_0", "q2_k", "q4_k_m", "q6_k"])
def test_same_greedy_tokens_as_source(samples, cli, tmp_path, type_name):
    out = tmp_path / "out.gguf"
    assert cli("convert", samples.ggjt3(type_name), "-o", out, "--eps", "1e-5").code == 0
    assert _greedy(out) == _greedy(samples.gguf(type_name))


def test_defaults_flags_and_summary(samples, cli, tmp_path):
    out = tmp_path / "m.gguf"
    r = cli("convert", samples.ggjt3("q4_0"), "-o", out)
    assert r.code == 0, r.err
    assert "rms_norm_eps 5e-06 (default)" in r.out and "context_length 2048 (default)" in r.out
    g = read_gguf(out)
    assert g.arch_kv(Keys.Attention.LAYERNORM_RMS_EPS) == 5e-06
    assert g.arch_kv(Keys.Rope.FREQ_BASE) is None
    out2 = tmp_path / "m2.gguf"
    r = cli("convert", samples.ggjt3("q4_0"), "-o", out2, "--eps", "1e-6", "-c", "4096", "--rope-freq-base", "1e6",
            "--name", "My Model", "--description", "hello", "--json")
    d = json.loads(r.out)
    assert d["metadata"]["sources"] == {"eps": "flag", "context_length": "flag", "rope_freq_base": "flag"}
    g = read_gguf(out2)
    assert (g.arch_kv(Keys.LLM.CONTEXT_LENGTH), g.arch_kv(Keys.Rope.FREQ_BASE)) == (4096, 1e6)
    assert g.arch_kv(Keys.Attention.LAYERNORM_RMS_EPS) == 1e-6
    assert (g.kv[Keys.General.NAME], g.kv[Keys.General.DESCRIPTION]) == ("My Model", "hello")


def test_metadata_dir(samples, cli, tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(
        {"max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "num_key_value_heads": 4}))
    (hf / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}", "add_bos_token": True}))
    out = tmp_path / "m.gguf"
    r = cli("convert", samples.ggjt3("q4_0"), "-o", out, "--metadata-dir", hf, "-c", "1024")
    assert r.code == 0, r.err
    g = read_gguf(out)
    assert g.arch_kv(Keys.LLM.CONTEXT_LENGTH) == 1024  # the flag wins over config.json
    assert g.arch_kv(Keys.Attention.LAYERNORM_RMS_EPS) == 1e-5
    assert g.arch_kv(Keys.Rope.FREQ_BASE) == 500000.0
    assert "rope_freq_base 500000 (config.json)" in r.out  # every setting of the summary says its source
    assert g.kv[Keys.Tokenizer.CHAT_TEMPLATE].startswith("{% for m in messages %}")
    (hf / "config.json").write_text(json.dumps({"num_key_value_heads": 2}))
    assert_clean_error(cli("convert", samples.ggjt3("q4_0"), "-o", tmp_path / "x.gguf", "--metadata-dir", hf),
                       2, "KV heads")


def test_gqa_inferred_and_overridden(cli, tmp_path):
    from ggufkit.samples.legacy import export_legacy
    from ggufkit.samples.model import SampleSpec, write_gguf

    spec = SampleSpec(n_vocab=512, n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=768)
    src = tmp_path / "source.gguf"
    write_gguf(src, spec, f16=True)
    legacy = tmp_path / "gqa.bin"
    export_legacy(src, legacy)
    r = cli("convert", legacy, "--json", "--eps", "1e-5")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metadata"]["head_count_kv"] == 2
    assert read_gguf(tmp_path / "gqa.gguf").arch_kv(Keys.Attention.HEAD_COUNT_KV) == 2  # written beside the input
    assert_clean_error(cli("convert", legacy, "-o", tmp_path / "x.gguf", "--gqa", "1"), 2, "shape")


def test_default_output_name_and_overwrite(samples, cli, tmp_path):
    legacy = tmp_path / "llama-2-7b.ggmlv3.q4_0.bin"
    legacy.write_bytes(samples.ggjt3("q4_0").read_bytes())
    assert cli("convert", legacy, "-q").code == 0
    out = tmp_path / "llama-2-7b.q4_0.gguf"
    before = out.read_bytes()
    r = cli("convert", legacy, "--eps", "1e-5")
    assert_clean_error(r, 2, "--force")
    assert out.read_bytes() == before
    assert cli("convert", legacy, "--eps", "1e-5", "--force", "-q").code == 0
    assert out.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llama-2-7b.ggmlv3.q4_0.bin", "llama-2-7b.q4_0.gguf"]
    assert legacy.read_bytes() == samples.ggjt3("q4_0").read_bytes()


def test_batch(samples, cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for t in ("q4_0", "q5_1", "f16"):
        (src / f"m-{t}.ggmlv3.bin").write_bytes(samples.ggjt3(t).read_bytes())
    (src / "notes.txt").write_text("not a model")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(samples.ggjt3("q8_0").read_bytes()[:50_000])
    extra = tmp_path / "x.ggmlv3.q6_k.bin"
    extra.write_bytes(samples.ggjt3("q6_k").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "m-q5_1.gguf").write_bytes(b"keep me")
    r = cli("convert", src, bad, extra, "--out-dir", out, "--jobs", "2", "--json")
    assert r.code == 1
    items = {os.path.basename(i["input"]): i for i in json.loads(r.out)}
    assert {k: v["status"] for k, v in items.items()} == {
        "m-q4_0.ggmlv3.bin": "converted", "m-q5_1.ggmlv3.bin": "skipped", "m-f16.ggmlv3.bin": "converted",
        "bad.bin": "failed", "x.ggmlv3.q6_k.bin": "converted",
        "notes.txt": "skipped",  # a directory's other files are listed, not failed (a named one fails)
    }
    assert "not a legacy model file" in items["notes.txt"]["message"]
    # one schema for one file and a batch: every key of a single --json report, in the same order
    one = json.loads(cli("convert", extra, "-o", tmp_path / "one.gguf", "--json").out)
    assert list(one) == list(items["m-q4_0.ggmlv3.bin"]) == list(items["bad.bin"])
    assert one["status"] == "converted" and one["tensors"] > 0 and one["warnings"] == []
    assert "truncated" in items["bad.bin"]["message"]
    assert (out / "m-q5_1.gguf").read_bytes() == b"keep me"
    assert sorted(p.name for p in out.iterdir()) == ["m-f16.gguf", "m-q4_0.gguf", "m-q5_1.gguf", "x.q6_k.gguf"]
    r = cli("convert", src, "--out-dir", out, "--force")
    assert r.code == 0, r.err
    assert "converted" in r.out and "m-q5_1.ggmlv3.bin" in r.out
    assert read_gguf(out / "m-q5_1.gguf").tensors


def test_bad_inputs(samples, cli, tmp_path):
    out = tmp_path / "x.gguf"
    assert_clean_error(cli("convert", samples.gguf("f16"), "-o", out), 2, "already a GGUF")
    trunc = tmp_path / "t.bin"
    trunc.write_bytes(samples.ggjt3("q4_0").read_bytes()[:-10])
    assert_clean_error(cli("convert", trunc, "-o", out), 2, "truncated", str(trunc))
    assert_clean_error(cli("convert", tmp_path / "missing.bin", "-o", out), 2, "No such file")
    # a missing folder is made (issue 26), but not where a file stands
    assert_clean_error(cli("convert", samples.ggjt3("q4_0"), "-o", trunc / "x.gguf"), 2, "not a directory", str(trunc))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]


def test_verify(samples, cli, tmp_path):
    r = cli("convert", samples.ggjt3("q4_k_m"), "-o", tmp_path / "v.gguf", "--verify")
    assert r.code == 0, r.err


def test_killed_mid_write_leaves_no_output(samples, cli, tmp_path):
    big = samples.ggjt3("f16", "small")
    out = tmp_path / "out.gguf"
    proc = subprocess.Popen([sys.executable, "-m", "ggufkit", "convert", str(big), "-o", str(out), "-q"])
    writing = False
    deadline = time.time() + 30
    while not writing and time.time() < deadline and proc.poll() is None:
        writing = writing_in(proc.pid, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert writing, "the converter was never seen writing"
    assert not out.exists()
    # the next run for the same output sweeps anything the killed one left, and succeeds
    assert cli("convert", big, "-o", out, "-q").code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf"]


def test_a_directory_means_its_legacy_files(samples, cli, tmp_path):
    folder = tmp_path / "emptydir.gguf"
    folder.mkdir()
    assert_clean_error(cli("convert", folder, "-o", tmp_path / "x.gguf"), 2,
                       "is a directory: -o names one output file; convert several with --out-dir DIR")
    assert_clean_error(cli("convert", folder), 2, "directly inside it, and this one holds none")
    import re

    assert "a directory stands for the legacy model files directly inside it" in re.sub(
        r"[\s│]+", " ", cli("convert", "--help").out)


def test_unknown_file_type_in_a_ggjt_header_is_warned_once_and_the_real_one_written(samples, cli, tmp_path):
    import struct

    data = bytearray(samples.ggjt3("q4_0").read_bytes())
    assert struct.unpack_from("<4sI7i", data)[8] == 2  # magic, version, n_vocab … n_rot, ftype (Q4_0)
    struct.pack_into("<i", data, 32, 99)
    src = tmp_path / "ft99.bin"
    src.write_bytes(bytes(data))
    r = cli("convert", src, "-o", tmp_path / "ft99.gguf", "--json")
    assert r.code == 0, r.err
    assert r.err.count("file type 99 is unknown") == 1 and "wrote Q4_0" in r.err
    assert json.loads(r.out)["warnings"] and json.loads(r.out)["file_type"] == "Q4_0"
    assert read_gguf(tmp_path / "ft99.gguf").kv[Keys.General.FILE_TYPE] == 2
