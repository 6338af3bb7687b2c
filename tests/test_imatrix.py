"""`ggufkit imatrix`: llama-imatrix's sums through llama.cpp's eval callback, checked against a numpy forward
pass, through llama.cpp's quantizer (GGUF and .dat), on a mixture-of-experts model, on bad input, cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.imatrix.files import PARTIAL_KEY, read_matrix
from ggufkit.imatrix.matrix import normalised
from tests.conftest import NEEDS_GPU, assert_clean_error, json_of

TEXT = ("hello the world of the model and the token of the file " * 40 + "llama model file token world " * 40)
CTX = 64
LAYER_WEIGHTS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@pytest.fixture(scope="module")
def made(samples, tmp_path_factory):
    """The tiny F16 sample, a text, and its matrix in both layouts (computed once, by the CLI)."""
    from tests.conftest import run_cli

    folder = tmp_path_factory.mktemp("imatrix")
    text = folder / "text.txt"
    text.write_text(TEXT)
    model = samples.gguf("f16")
    gguf = folder / "tiny.imatrix.gguf"
    r = run_cli("imatrix", model, "-f", text, "--ctx", CTX, "--chunks", 3, "-t", 2, "-o", gguf, "--json")
    dat = folder / "tiny.imatrix.dat"
    r2 = run_cli("imatrix", "--in-file", gguf, "--output-format", "dat", "-o", dat, "--ctx", CTX)
    assert r2.code == 0, r2.err
    return {"model": model, "text": text, "gguf": gguf, "dat": dat, "report": json_of(r), "folder": folder}


def _chunk_tokens(model: Path, text: str, ctx: int, chunks: int) -> list[list[int]]:
    """llama-imatrix's chunks, through llama-cpp-python's own tokenizer: BOS first in each chunk."""
    import llama_cpp

    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=True)
    return [[llm.token_bos(), *tokens[i * ctx + 1:(i + 1) * ctx]] for i in range(chunks)]


def test_sums_equal_a_numpy_forward_pass_of_layer_0(made):
    """Layer 0's q/k/v input is RMSNorm(embedding) x attn_norm: computed here from the file's tensors alone."""
    reader = GGUFReader(made["model"])
    t = {x.name: np.asarray(x.data) for x in reader.tensors}
    eps = float(reader.fields["llama.attention.layer_norm_rms_epsilon"].parts[-1][0])
    rows = np.concatenate([t["token_embd.weight"][c].astype(np.float64) for c in _chunk_tokens(made["model"], TEXT, CTX, 3)])
    x = rows / np.sqrt((rows * rows).mean(axis=1, keepdims=True) + eps) * t["blk.0.attn_norm.weight"]
    expected = (x * x).sum(axis=0)
    m = read_matrix(made["gguf"])
    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"):
        np.testing.assert_allclose(m.entries[name].sums, expected, rtol=1e-4)
    n_layer = 2
    assert sorted(m.entries) == sorted(f"blk.{i}.{w}.weight" for i in range(n_layer) for w in LAYER_WEIGHTS)
    assert {int(e.counts[0]) for e in m.entries.values()} == {3 * CTX}  # every row of every chunk, last layer too
    assert (m.chunk_size, m.recorded_chunks, m.datasets) == (CTX, 3, [str(made["text"])])
    assert made["report"]["chunks"] == 3 and made["report"]["entries"] == 14 and made["report"]["partial"] is False


def test_process_output_adds_output_weight(made, cli, tmp_path):
    out = tmp_path / "o.gguf"
    r = cli("imatrix", made["model"], "-f", made["text"], "--ctx", CTX, "--chunks", 1, "--process-output", "-o", out, "-q")
    assert r.code == 0, r.err
    m = read_matrix(out)
    assert "output.weight" in m.entries and len(m.entries) == 15
    assert m.entries["output.weight"].sums.size == 256


def test_legacy_input_is_converted_once_as_run_does(made, samples, cli, tmp_path, monkeypatch):
    """A GGJT v3 file: converted once into the cache, then the same matrix as that conversion's."""
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    args = ("-f", made["text"], "--ctx", CTX, "--chunks", 3, "-q")
    r = cli("imatrix", samples.ggjt3("f16"), *args, "-o", tmp_path / "legacy.gguf")
    assert r.code == 0, r.err
    [converted] = (tmp_path / "cache" / "converted").glob("*.gguf")
    assert cli("imatrix", converted, *args, "-o", tmp_path / "converted.gguf").code == 0
    legacy, direct = read_matrix(tmp_path / "legacy.gguf"), read_matrix(tmp_path / "converted.gguf")
    assert sorted(legacy.entries) == sorted(direct.entries) and len(legacy.entries) == 14
    for name, e in direct.entries.items():
        assert np.array_equal(legacy.entries[name].sums, e.sums) and legacy.entries[name].counts.tolist() == [3 * CTX]


def test_dat_round_trip_through_llama_cpps_quantizer(made, cli, tmp_path):
    """The .dat file (means x ncall) gives llama.cpp's quantizer the matrix the GGUF gives it."""
    g, d = read_matrix(made["gguf"]), read_matrix(made["dat"])
    assert d.legacy and (d.recorded_chunks, d.datasets) == (3, g.datasets)
    assert {int(e.counts[0]) for e in d.entries.values()} == {3}  # ncall: chunks
    ng, nd = normalised(g), normalised(d)
    assert sorted(ng) == sorted(nd)
    for name in ng:
        np.testing.assert_allclose(nd[name], ng[name], rtol=3e-7)
    outs = {}
    for kind in ("gguf", "dat"):
        outs[kind] = tmp_path / f"{kind}.gguf"
        r = cli("quantize", made["model"], "-t", "iq2_xxs", "--imatrix", made[kind], "-o", outs[kind], "-q")
        assert r.code == 0, r.err
    a, b = read_gguf(outs["gguf"]), read_gguf(outs["dat"])
    assert a.kv["quantize.imatrix.chunks_count"] == b.kv["quantize.imatrix.chunks_count"] == 3
    assert a.kv["quantize.imatrix.entries_count"] == b.kv["quantize.imatrix.entries_count"] == 14
    x, y = outs["gguf"].read_bytes()[a.data_offset:], outs["dat"].read_bytes()[b.data_offset:]
    assert len(x) == len(y)
    # byte-identical here (0 of 8890 blocks differ); a 1-ulp difference of (mean x ncall) / ncall may flip a
    # grid choice on other data, so up to 1% of the 66-byte IQ2_XXS blocks may
    differing = sum(x[i:i + 66] != y[i:i + 66] for i in range(0, len(x) - 65, 66))
    assert differing <= len(x) // 66 // 100, differing


def test_in_file_combines_as_llama_imatrix(made, cli, tmp_path):
    """GGUF sums add; a .dat entry comes back as mean x ncall x chunk size, so the two give twice the sums."""
    out = tmp_path / "both.gguf"
    r = cli("imatrix", "--in-file", made["gguf"], "--in-file", made["dat"], "--ctx", CTX, "-o", out, "--json")
    d = json_of(r)
    assert d["entries"] == 14 and d["chunk_count"] == 6 and d["datasets"] == [str(made["text"])] * 2
    both, one = read_matrix(out), read_matrix(made["gguf"])
    for name, e in one.entries.items():
        np.testing.assert_allclose(both.entries[name].sums, 2 * e.sums, rtol=1e-6)
        assert both.entries[name].counts.tolist() == [2 * 3 * CTX]


def test_inspect_shows_the_matrix(made, cli):
    for kind in ("gguf", "dat"):
        d = json_of(cli("inspect", made[kind], "--json"))
        assert d["entries"] == 14 and d["chunk_count"] == 3 and len(d["tensors"]) == 14
        row = next(t for t in d["tensors"] if t["tensor"] == "blk.1.ffn_down.weight")
        assert row["block"] == 1 and row["elements"] == 768 and 0 < row["active"] <= 1 and row["cossim"] is not None
        assert row["sum"] == pytest.approx(row["mean"] * 768, rel=1e-6)
        assert [b["block"] for b in d["blocks"]] == [0, 1]
    r = cli("inspect", made["gguf"])
    assert r.code == 0 and "format:   imatrix GGUF" in r.out and "blk.0.attn_q.weight" in r.out


def test_ctrl_c_keeps_whole_chunks_marked_partial(made, tmp_path, monkeypatch):
    """Two chunks per batch; stopped inside llama.cpp's callback during the second batch (chunk 3): the file
    holds chunks 1-2 exactly, marked partial."""
    from ggufkit.imatrix import collect, compute
    from ggufkit.imatrix.job import ImatrixJob, run_job

    monkeypatch.setattr(compute, "BATCH", 2 * CTX)
    seen = []
    original = collect.Collector._collect

    def interrupting(self, t):
        seen.append(1)
        if len(seen) == 14 + 5:  # the fifth weight of the second batch
            raise KeyboardInterrupt
        original(self, t)

    monkeypatch.setattr(collect.Collector, "_collect", interrupting)
    report = run_job(ImatrixJob(made["model"], tmp_path / "p.gguf", made["text"], CTX, None, 2))
    assert report.partial and report.chunks == 2
    m, full = read_matrix(tmp_path / "p.gguf"), read_matrix(made["gguf"])
    assert m.partial and read_gguf(tmp_path / "p.gguf").kv[PARTIAL_KEY] == f"2 of {report.chunks_total} chunks"
    assert {int(e.counts[0]) for e in m.entries.values()} == {2 * CTX}
    name = "blk.1.ffn_down.weight"
    assert (m.entries[name].sums < full.entries[name].sums).all()  # two chunks' sums, not three nor 2.x


def test_cache_computes_once(made, monkeypatch, tmp_path, cli):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    from ggufkit.imatrix import matrix_for

    calls = []
    path = matrix_for(made["model"], made["text"], ctx=CTX, chunks=2, threads=2, on_progress=calls.append)
    assert [(p.chunks, p.total) for p in calls] == [(2, 2)]  # both chunks side by side in one batch
    stamp = path.stat().st_mtime_ns
    again = matrix_for(made["model"], str(made["text"]), ctx=CTX, chunks=2, on_progress=calls.append)
    assert again == path and len(calls) == 1 and path.stat().st_mtime_ns == stamp
    assert matrix_for(made["model"], made["text"], ctx=CTX, chunks=1) != path  # other settings, other matrix
    # quantize --imatrix-text: two types, then another call: the matrix of the default settings once
    for types in (["iq2_xxs", "q2_k_s"], ["q2_k_s"]):
        r = cli("quantize", made["model"], *[a for t in types for a in ("-t", t)], "--imatrix-text", made["text"],
                "--imatrix-chunks", 1, "--out-dir", tmp_path / "q", "--force", "--json")
        assert r.code == 0, r.err
    cached = sorted((tmp_path / "cache" / "imatrix").glob("*.gguf"))
    assert len(cached) == 3
    [q] = [read_gguf(p) for p in (tmp_path / "q").glob("*Q2_K_S.gguf")]
    assert q.kv["quantize.imatrix.dataset"] == str(made["text"]) and q.kv["quantize.imatrix.chunks_count"] == 1


def test_bad_input(made, cli, tmp_path, samples):
    out = tmp_path / "out"
    out.mkdir()
    short, empty = tmp_path / "short.txt", tmp_path / "empty.txt"
    short.write_text("hello the world")
    empty.write_text("")
    m = made["model"]
    assert_clean_error(cli("imatrix", m, "-f", short, "--ctx", CTX, "-o", out / "x.gguf"), 2, "needs at least 128")
    assert_clean_error(cli("imatrix", m, "-f", empty, "-o", out / "x.gguf"), 2, "empty.txt", "empty")
    assert_clean_error(cli("imatrix", "-o", out / "x.gguf"), 2, "--in-file")
    assert_clean_error(cli("imatrix", m, "-f", made["text"], "--ctx", 15, "-o", out / "x.gguf"), 2, "--ctx")
    assert_clean_error(cli("imatrix", m, "-f", made["text"], "-o", made["gguf"]), 2, "exists")
    assert_clean_error(cli("quantize", m, "-t", "iq2_xs", "-o", out / "q.gguf"), 2, "--imatrix ", "--imatrix-text")
    assert_clean_error(cli("quantize", m, "-t", "iq2_xs", "--imatrix-text", empty, "-o", out / "q.gguf"), 2, "empty")
    # a matrix of another model: sizes (the small sample is 1024 wide), or names, that do not fit
    other = samples.gguf("f16", "small")
    r = cli("quantize", other, "-t", "iq2_xs", "--imatrix", made["gguf"], "-o", out / "q.gguf")
    assert_clean_error(r, 2, str(made["gguf"]), "another model")
    r = cli("imatrix", other, "-f", made["text"], "--in-file", made["gguf"], "--ctx", CTX, "-o", out / "x.gguf")
    assert_clean_error(r, 2, "another model")
    assert list(out.iterdir()) == []


def _moe_sample(path: Path, n_expert: int = 4, n_used: int = 2) -> Path:
    """The tiny sample's shape as a Mixtral-style mixture of experts (llama architecture, expert tensors)."""
    from ggufkit.samples.model import SIZES
    from ggufkit.samples.vocab import build_vocab

    spec, rng = SIZES["tiny"], np.random.default_rng(0)
    w = GGUFWriter(path, "llama")
    for add, value in ((w.add_context_length, 2048), (w.add_embedding_length, spec.n_embd), (w.add_block_count, 2),
                       (w.add_feed_forward_length, spec.n_ff), (w.add_rope_dimension_count, spec.n_embd // spec.n_head),
                       (w.add_head_count, spec.n_head), (w.add_head_count_kv, spec.n_head_kv),
                       (w.add_layer_norm_rms_eps, spec.rms_eps), (w.add_expert_count, n_expert),
                       (w.add_expert_used_count, n_used)):
        add(value)
    tokens, scores, types = build_vocab(spec.n_vocab, 0)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    e, f = spec.n_embd, spec.n_ff
    for name, shape in spec.shapes():
        if ".ffn_gate." in name or ".ffn_up." in name or ".ffn_down." in name:
            kind = name.split(".")[2]
            shape = (n_expert, e, f) if kind == "ffn_down" else (n_expert, f, e)
            name = name.replace(f"{kind}.", f"{kind}_exps.")
            if kind == "ffn_gate":
                w.add_tensor(name.replace("ffn_gate_exps", "ffn_gate_inp"), rng.standard_normal((n_expert, e), dtype=np.float32))
        data = np.ones(shape, np.float32) if len(shape) == 1 else rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_mixture_of_experts_counts_and_quantization(made, cli, tmp_path):
    """MUL_MAT_ID: one row of sums and one count per expert; each token counted once per expert it uses."""
    model = _moe_sample(tmp_path / "moe.gguf")
    out = tmp_path / "moe.imatrix.gguf"
    r = cli("imatrix", model, "-f", made["text"], "--ctx", CTX, "--chunks", 2, "-o", out, "-q")
    assert r.code == 0, r.err
    m = read_matrix(out)
    for layer in range(2):
        for kind, cols in (("ffn_gate_exps", 256), ("ffn_up_exps", 256), ("ffn_down_exps", 768)):
            e = m.entries[f"blk.{layer}.{kind}.weight"]
            assert e.n_mat == 4 and e.n_cols == cols
            assert e.counts.sum() == 2 * CTX * 2  # tokens x experts used
        up, gate = m.entries[f"blk.{layer}.ffn_up_exps.weight"], m.entries[f"blk.{layer}.ffn_gate_exps.weight"]
        assert up.counts.tolist() == gate.counts.tolist() and np.array_equal(up.sums, gate.sums)  # same input rows
        assert m.entries[f"blk.{layer}.ffn_gate_inp.weight"].counts.tolist() == [2 * CTX]
    q = tmp_path / "moe-iq2.gguf"
    r = cli("quantize", model, "-t", "iq2_xxs", "--imatrix", out, "-o", q, "-q")
    assert r.code == 0, r.err
    assert json.loads(json.dumps(read_gguf(q).kv["quantize.imatrix.entries_count"])) == len(m.entries)


@NEEDS_GPU
def test_gpu_matrix_equals_the_cpu_one(made, cli, tmp_path):
    """-ngl all: the activations are copied from the device (ggml_backend_tensor_get). They are not the CPU's to
    the last bit: CUDA's matrix products take F16 inputs, so a layer's output differs by ~1e-3 relative, and
    its square by twice that (measured on an H100: 35 of 768 sums beyond 1e-3, the largest 2.3e-3). On the
    medium sample the GPU matrix equals llama-imatrix -ngl 99's byte for byte (benchmarks/gpu/imatrix_gpu.py)."""
    out = tmp_path / "gpu.gguf"
    r = cli("imatrix", made["model"], "-f", made["text"], "--ctx", CTX, "--chunks", 3, "-ngl", "all", "-o", out, "-q")
    assert r.code == 0, r.err
    gpu, cpu = read_matrix(out), read_matrix(made["gguf"])
    assert sorted(gpu.entries) == sorted(cpu.entries)
    rel = []
    for name, e in cpu.entries.items():
        assert gpu.entries[name].counts.tolist() == e.counts.tolist()
        np.testing.assert_allclose(gpu.entries[name].sums, e.sums, rtol=5e-3)
        rel.append(np.abs(gpu.entries[name].sums - e.sums) / np.abs(e.sums))
    assert np.mean(np.concatenate(rel) <= 1e-3) >= 0.9
