"""`ggufkit eval`: perplexity as llama-perplexity computes it, KL-divergence against the base, one pass."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import assert_clean_error, json_of

TEXT = ("hello the world of the model and the token of the file " * 40 + "llama model file token world " * 40)


@pytest.fixture(scope="module")
def family(samples, tmp_path_factory):
    """The tiny F16 sample and three quantizations of it."""
    from ggufkit.quantize.quant_types import quant_type
    from ggufkit.quantize.quantizer import quantize_file

    base = samples.gguf("f16")
    folder = tmp_path_factory.mktemp("eval")
    out = {"f16": base}
    for t in ("q8_0", "q4_k_m", "q2_k"):
        out[t] = folder / f"tiny-{t}.gguf"
        quantize_file(base, out[t], quant_type(t))
    text = folder / "text.txt"
    text.write_text(TEXT)
    out["text"] = text
    return out


def _reference_ppl(path, text: str, ctx: int, chunks: int) -> float:
    """The perplexity recipe of llama-perplexity, through llama-cpp-python's high-level API (another path
    into llama.cpp than ggufkit's): BOS first in each chunk when the model adds it, second half scored."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=ctx, n_batch=ctx, logits_all=True, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=True)
    nll, count = 0.0, 0
    for i in range(chunks):
        chunk = tokens[i * ctx:(i + 1) * ctx]
        if llama_cpp.llama_vocab_get_add_bos(llm._model.vocab):
            chunk = [llm.token_bos(), *chunk[1:]]
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:ctx], dtype=np.float64)
        first = ctx // 2
        for j in range(first, ctx - 1):
            row = logits[j] - logits[j].max()
            nll += math.log(np.exp(row).sum()) - row[tokens[i * ctx + j + 1]]
            count += 1
    return math.exp(nll / count)


def test_perplexity_as_llama_perplexity_computes_it(family, cli):
    r = cli("eval", family["f16"], "-f", family["text"], "--ctx", "128", "--chunks", "3", "--json")
    d = json_of(r)
    assert d["chunks"] == 3 and d["ctx"] == 128 and d["add_bos"] is True
    ref = _reference_ppl(family["f16"], TEXT, 128, 3)
    assert d["models"][0]["ppl"] == pytest.approx(ref, rel=1e-4)


def test_kld_table_ordering_and_self(family, cli, tmp_path):
    r = cli("eval", family["f16"], family["f16"], family["q8_0"], family["q4_k_m"], family["q2_k"],
            "-f", family["text"], "--ctx", "128", "--chunks", "3", "--json")
    d = json_of(r)
    assert sorted(d) == ["add_bos", "chunks", "chunks_total", "ctx", "models", "partial", "text", "tokens"]
    assert sorted(d["models"][1]) == ["bits_per_weight", "file_size", "parameters", "path", "ppl", "ppl_err",
                                      "tokens_per_second", "vs_base"]
    base, same, q8, q4, q2 = d["models"]
    assert base["vs_base"] is None
    assert same["vs_base"]["kld_mean"] == 0 and same["vs_base"]["same_top"] == 1.0
    assert same["ppl"] == base["ppl"]
    assert 0 < q8["vs_base"]["kld_mean"] < q4["vs_base"]["kld_mean"] < q2["vs_base"]["kld_mean"]
    assert q8["bits_per_weight"] > q4["bits_per_weight"] > q2["bits_per_weight"]
    for key in ("kld_err", "kld_median", "kld_p99", "kld_max", "same_top", "dp_rms", "ln_ppl_ratio", "ppl_ratio"):
        assert key in q4["vs_base"]


def test_formats_output_file_and_plot(family, cli, tmp_path):
    md, png = tmp_path / "t.md", tmp_path / "p.png"
    r = cli("eval", family["f16"], family["q4_k_m"], "-f", family["text"], "--ctx", "128", "--chunks", "2",
            "--format", "md", "-o", md, "--plot", png)
    assert r.code == 0, r.err
    assert r.out.startswith("| model | size | bpw | PPL |") and md.read_text() == r.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = cli("eval", family["f16"], family["q4_k_m"], "-f", family["text"], "--ctx", "128", "--chunks", "2",
            "--format", "csv")
    assert r.out.splitlines()[0].startswith("model,file_size,bits_per_weight,ppl")
    r = cli("eval", family["f16"], "-f", family["text"], "--ctx", "128", "--chunks", "2")
    assert "tiny-f16.gguf" in r.out and "2 chunks of 128 tokens (126 scored)" in r.out


def test_bad_inputs(family, samples, cli, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hello the world")
    assert_clean_error(cli("eval", family["f16"], "-f", short), 2, "needs at least 1024")
    assert_clean_error(cli("eval", family["f16"], samples.gguf("f16", "small"), "-f", family["text"], "--ctx", "128"),
                       2, "vocabulary is not the base model's")
    assert_clean_error(cli("eval", tmp_path / "missing.gguf", "-f", family["text"]), 2, "missing.gguf")
    assert_clean_error(cli("eval", family["f16"], "-f", tmp_path / "nope.txt"), 2, "nope.txt")
    assert_clean_error(cli("eval", family["f16"], "--plot", tmp_path / "x.jpg", "-f", family["text"]), 2, ".png or .svg")


def test_legacy_input_and_default_text(family, samples, cli):
    r = cli("eval", family["f16"], samples.ggjt3("f16"), "--ctx", "128", "--chunks", "1", "--json")
    d = json_of(r)
    assert d["text"].startswith("pydoc_data.topics")
    # the same weights; the conversion's default RMS epsilon (5e-6) differs from the sample's (1e-5)
    assert 0 <= d["models"][1]["vs_base"]["kld_mean"] < 1e-5


def test_quantize_with_eval_adds_quality(family, cli, tmp_path):
    r = cli("quantize", family["f16"], "-t", "q8_0", "-t", "q2_k", "--out-dir", tmp_path, "--eval", family["text"],
            "--eval-chunks", "1", "--json")
    reports = json_of(r)
    q8, q2 = (x["quality"] for x in reports)
    assert 0 < q8["kld_mean"] < q2["kld_mean"] and q8["same_top"] >= q2["same_top"]
    r = cli("quantize", family["f16"], "-t", "q4_0", "-o", tmp_path / "a.gguf", "--eval", family["text"],
            "--eval-chunks", "1", "--force")
    assert "mean KLD" in r.out.splitlines()[0] and "input PPL" in r.out


def test_chart_labels_are_what_the_names_do_not_share():
    """`quantize` names a child after the source without its type (model.F16.gguf -> model-Q4_K_M.gguf): the chart
    labels the points by type, not "F16-Q4_K_M"."""
    from types import SimpleNamespace

    from ggufkit.evaluate.plot import labels

    def result(*names):
        return SimpleNamespace(models=[SimpleNamespace(path=f"/m/{n}", vs_base=None if i == 0 else {})
                                       for i, n in enumerate(names)])

    assert labels(result("SmolLM2-135M-Instruct.F16.gguf", "SmolLM2-135M-Instruct-Q4_K_M.gguf",
                         "SmolLM2-135M-Instruct-Q8_0.gguf")) == ["F16 (base)", "Q4_K_M", "Q8_0"]
    assert labels(result("model.F16.gguf", "model.F16-Q4_K_M.gguf")) == ["F16 (base)", "F16-Q4_K_M"]
    assert labels(result("a-f16.gguf", "b-q8_0.gguf")) == ["a-f16 (base)", "b-q8_0"]
