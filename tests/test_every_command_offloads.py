"""Every command that loads a model, once on the CPU and once with `-ngl all`: no crash, the same figures.

On CI's CPU build `-ngl all` falls back to the CPU (with a warning where the command gives one); on a GPU
build (`GGUFKIT_GPU=cuda make test`) every layer is offloaded, and this file is the run that issue 28
asked for: a command that crashes on the GPU (eval once did: numpy loaded before llama.cpp) fails here.
GGUFKIT_TEST_SIZE picks the sample (default tiny; the GPU run uses `small`)."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import gpu_build, json_of

SIZE = os.environ.get("GGUFKIT_TEST_SIZE", "tiny")
NGL = ["0", "all"]


@pytest.fixture(scope="module")
def model(samples):
    return samples.gguf("q8_0", SIZE)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(" ".join(f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(400)))
    return path


def test_inspect(cli, model):
    assert json_of(cli("inspect", model, "--json"))["file_type"] == "Q8_0"


@pytest.mark.parametrize("ngl", NGL)
def test_run_one_shot(cli, model, ngl):
    r = cli("run", model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", ngl, "--json", "--verbose-llama")
    assert json.loads(r.out)["generated_tokens"] == 8, r.err
    if ngl == "all" and gpu_build():
        assert re.search(r"offloaded (\d+)/\1 layers to GPU", r.err), r.err


@pytest.mark.parametrize("ngl", NGL)
def test_run_chat_over_a_pipe(cli, model, ngl):
    r = cli("run", model, "-i", "-n", "6", "--temp", "0", "-ngl", ngl, stdin="hello\nand again\n")
    assert r.code == 0, r.err
    assert r.out.strip(), r.err


@pytest.mark.parametrize("ngl", NGL)
def test_bench(cli, model, ngl):
    gpu = ["--gpu", "off"] if ngl == "0" else ["--gpu", "auto", "-ngl", ngl]
    rows = json_of(cli("bench", model, "-p", "32", "-n", "8", "-r", "1", *gpu, "--format", "json", "-q"))["rows"]
    assert rows and all(row["error"] is None and row["pp_tps"] > 0 and row["tg_tps"] > 0 for row in rows), rows
    if ngl == "all" and gpu_build():
        assert all(row["backend"] != "CPU" for row in rows), rows


@pytest.mark.parametrize("ngl", NGL)
def test_eval(cli, model, text, ngl):
    r = json_of(cli("eval", model, model, "-f", text, "--ctx", "64", "--chunks", "3", "-ngl", ngl, "--json"))
    base, same = r["models"]
    assert base["ppl"] > 1 and abs(same["ppl"] / base["ppl"] - 1) < 1e-3
    assert same["vs_base"]["same_top"] > 0.99
    assert base["tokens_per_second"] > 0 and same["tokens_per_second"] > 0


@pytest.mark.parametrize("ngl", NGL)
def test_quantize_with_eval(cli, model, text, ngl, tmp_path):
    source = model.parent / f"{SIZE}-f16.gguf"
    if not source.exists():
        from ggufkit.samples.make import make_sample

        make_sample(source, "f16", "gguf", SIZE)
    r = json_of(cli("quantize", source, "-t", "q4_0", "--out-dir", tmp_path, "--eval", text, "--eval-chunks", "2",
                    "-ngl", ngl, "--json", "-q"))
    assert r["quality"]["kld_mean"] > 0, r


@pytest.mark.parametrize("ngl", NGL)
def test_imatrix(cli, model, text, ngl, tmp_path):
    r = json_of(cli("imatrix", model, "-f", text, "--ctx", "64", "--chunks", "2", "-ngl", ngl, "-o", tmp_path / "m.gguf",
                    "--json"))
    assert r["entries"] > 0 and r["chunk_count"] == 2 and r["ppl"] > 1, r


def _f16_source(model):
    source = model.parent / f"{SIZE}-f16.gguf"
    if not source.exists():
        from ggufkit.samples.make import make_sample

        make_sample(source, "f16", "gguf", SIZE)
    return source


@pytest.mark.parametrize("ngl", NGL)
def test_fit(cli, model, text, ngl, tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    r = json_of(cli("fit", _f16_source(model), "-t", "q8_0", "-t", "q4_0", "--ctx", "64", "--chunks", "2", "-r", "1",
                    "-f", text, "-ngl", ngl, "--json", timeout=600))
    assert r["choice"] in ("Q8_0", "Q4_0"), r
    for row in r["candidates"]:
        assert row["mean_kld"] >= 0 and row["tg_tps"] > 0 and row["peak_memory_bytes"] > 0, row
        if ngl == "all" and gpu_build():
            assert row["gpu_memory_bytes"] > 0, row


@pytest.mark.parametrize("ngl", NGL)
def test_run_several_models(cli, model, ngl):
    """Two models in one run: each answers what it answers alone."""
    both = json_of(cli("run", model, model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", ngl, "--json"))
    alone = json_of(cli("run", model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", ngl, "--json"))
    assert [d["text"] for d in both] == [alone["text"]] * 2, both


@pytest.mark.parametrize("ngl", NGL)
def test_run_sharded_model(cli, model, ngl, tmp_path):
    """The first shard of a split model stands for the whole model, offloaded too."""
    assert cli("split", model, "--max-tensors", "8", "-o", tmp_path / "m", "-q").code == 0
    first = sorted(tmp_path.glob("m-00001-of-*.gguf"))[0]
    r = json_of(cli("run", first, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", ngl, "--json"))
    alone = json_of(cli("run", model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", ngl, "--json"))
    assert r["text"] == alone["text"], r
