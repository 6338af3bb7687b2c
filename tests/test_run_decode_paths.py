"""`run`'s warm-up decode and `--backend-sampling`: faster paths that must not change a single token.

On CI's CPU-only build the backend is the CPU, so these run llama.cpp's in-graph samplers for real; on a GPU
build the same chain runs on the GPU (benchmarks/gpu/device_run.sh measures that).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import CPU_ONLY_BUILD, NEEDS_GPU, assert_clean_error, json_of as _json

PROMPT = ("-p", "hello the world", "-n", "24", "--ctx", "512", "--json")


@pytest.fixture(scope="module")
def model(samples):
    return samples.gguf("q4_k_m")


def test_warmup_is_timed_and_leaves_nothing_in_the_cache(cli, model):
    warm = _json(cli("run", model, *PROMPT, "--temp", "0"))
    cold = _json(cli("run", model, *PROMPT, "--temp", "0", "--no-warmup"))
    assert 0 < warm["timings"]["warmup_ms"] < warm["timings"]["load_ms"]
    assert cold["timings"]["warmup_ms"] == 0
    # warm-up tokens left in the KV cache would shift every position after them
    assert warm["generated_ids"] == cold["generated_ids"]
    assert warm["prompt_tokens"] == cold["prompt_tokens"] == warm["prompt_tokens_evaluated"]


@pytest.mark.parametrize("chain", [
    ("--temp", "0"),
    ("--seed", "11"),  # the default chain: top-k, top-p, min-p, temp, dist
    ("--seed", "3", "--temp", "1.2", "--top-k", "0", "--repeat-penalty", "1.3", "--presence-penalty", "0.5"),
    ("--seed", "5", "--mirostat", "2"),  # temp in the graph, mirostat after it on the CPU
], ids=["greedy", "default", "penalties", "mirostat"])
def test_backend_sampling_picks_the_same_tokens(cli, model, chain):
    on_cpu = _json(cli("run", model, *PROMPT, *chain))
    in_graph = _json(cli("run", model, *PROMPT, *chain, "--backend-sampling"))
    assert in_graph["generated_ids"] == on_cpu["generated_ids"]
    assert in_graph["generated_tokens"] == 24


def test_backend_sampling_is_reported_and_refuses_a_grammar(cli, model, tmp_path):
    r = cli("run", model, "-p", "hello", "-n", "4", "--temp", "0", "-v", "--verbose-llama", "--backend-sampling")
    assert r.code == 0, r.err
    assert "sampler: greedy (in llama.cpp's graph)" in r.err
    assert "Backend sampler selected token" in r.err  # llama.cpp's own word that the graph picked it
    grammar = tmp_path / "yes.gbnf"
    grammar.write_text('root ::= "yes"\n')
    r = cli("run", model, "-p", "hello", "-n", "4", "--backend-sampling", "--grammar-file", grammar)
    assert_clean_error(r, 2, "backend sampling cannot apply a grammar")


def test_backend_sampling_chat_rebuilds_its_chain(cli, model):
    """/set builds a new chain: the old one is detached from the context before it is freed."""
    script = "hello the world\n/set temp 0\nthe world\n/set top_k 3\nhello\n/exit\n"
    args = ("run", model, "-i", "-n", "6", "--seed", "2", "--template", "chatml", "--ctx", "512", "--stats")
    on_cpu = cli(*args, stdin=script)
    in_graph = cli(*args, "--backend-sampling", stdin=script)
    assert on_cpu.code == in_graph.code == 0, in_graph.err
    assert in_graph.err.count("generated 6 tokens") == 3
    assert in_graph.out == on_cpu.out


@CPU_ONLY_BUILD
def test_default_leaves_sampling_on_the_cpu_without_a_gpu(cli, model):
    for flags in ((), ("--no-backend-sampling",)):
        r = cli("run", model, "-p", "hello", "-n", "4", "--temp", "0", "-v", *flags)
        assert r.code == 0, r.err
        assert "sampler: greedy\n" in r.err + "\n" and "llama.cpp's graph" not in r.err


@pytest.mark.parametrize("setting, sampling, all_on_gpu, expected", [
    (None, {"temp": 0}, True, True),  # the one case the default moves into the graph
    (None, {"temp": 0}, False, False),  # CPU, or some layers on the CPU
    (None, {"temp": 0.8}, True, False),  # top-k/top-p chains measured slower on the GPU
    (None, {"temp": 0, "repeat_penalty": 1.1}, True, False),
    (None, {"temp": 0, "presence_penalty": 0.5}, True, False),
    (None, {"temp": 0, "grammar": 'root ::= "a"'}, True, False),
    (True, {"temp": 0.8}, False, True),  # asked for: always
    (False, {"temp": 0}, True, False),
])
def test_in_graph_policy(setting, sampling, all_on_gpu, expected):
    from ggufkit.runtime.params import SamplingParams
    from ggufkit.runtime.sampler import in_graph

    assert in_graph(setting, SamplingParams(**sampling), all_on_gpu) is expected


@NEEDS_GPU
def test_gpu_offloads_every_layer_and_samples_greedy_in_the_graph(cli, model):
    r = cli("run", model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", "all", "-v", "--verbose-llama")
    assert r.code == 0, r.err
    assert re.search(r"offloaded (\d+)/\1 layers to GPU", r.err), r.err
    assert "sampler: greedy (in llama.cpp's graph)" in r.err
    partial = cli("run", model, "-p", "hello", "-n", "8", "--temp", "0", "-ngl", "1", "-v")
    assert partial.code == 0 and "sampler: greedy\n" in partial.err + "\n"  # output layer on the CPU
    seeded = _json(cli("run", model, *PROMPT, "--seed", "4", "-ngl", "all"))
    assert seeded["generated_tokens"] == 24


def test_greedy_pick_is_llama_cpps_first_maximum():
    """The premise of the greedy shortcut (sampler._argmax_picker): numpy's argmax picks what llama.cpp's
    greedy sampler picks, ties included (the first maximum); on a NaN they differ, so the shortcut hands a
    row with a NaN maximum back to llama.cpp's own sampler."""
    import ctypes

    import llama_cpp as L
    import numpy as np

    def llama_greedy(row: np.ndarray) -> int:
        data = (L.llama_token_data * len(row))(*[L.llama_token_data(i, float(v), 0.0) for i, v in enumerate(row)])
        arr = L.llama_token_data_array(data, len(row), -1, False)
        greedy = L.llama_sampler_init_greedy()
        try:
            L.llama_sampler_apply(greedy, ctypes.byref(arr))
        finally:
            L.llama_sampler_free(greedy)
        return arr.selected

    rng = np.random.default_rng(0)
    rows = [rng.standard_normal(4096).astype(np.float32) for _ in range(3)]
    tied = rng.standard_normal(4096).astype(np.float32)
    tied[[7, 100, 3000]] = tied.max() + 1  # three equal maxima
    rows += [tied, np.full(64, -np.inf, np.float32), np.zeros(5, np.float32)]
    for row in rows:
        assert int(row.argmax()) == llama_greedy(row)
    nan = rng.standard_normal(64).astype(np.float32)
    nan[10] = np.nan
    assert np.isnan(nan[nan.argmax()]) and not np.isnan(nan[llama_greedy(nan)])


def test_greedy_shortcut_generates_what_the_native_chain_does(samples):
    """The same 96 tokens with the shortcut as with llama_sampler_sample over the same greedy chain."""
    from ggufkit.runtime.generate import stream
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams, SamplingParams, StopParams
    from ggufkit.runtime.sampler import build_sampler

    with load(LoadParams(samples.gguf("q4_k_m"), n_ctx=512, n_threads=1)) as m:
        runs = []
        for shortcut in (True, False):
            with build_sampler(m, SamplingParams(temp=0)) as s:
                assert s.greedy_only
                s.greedy_only = shortcut
                events = list(stream(m, s, m.tokenize("hello the world"), StopParams(max_tokens=96)))
            runs.append(events[-1])
    assert runs[0].tokens == runs[1].tokens and len(runs[0].tokens) == 96
    assert runs[0].text == runs[1].text


def test_stop_filter_is_the_naive_search_however_the_text_is_cut():
    """The incremental check (a held-back tail, a quick reject) shows exactly what a search of all the text
    so far would: generation stops at the first piece that completes a stop string, and shows the text
    before the earliest stop string complete by then."""
    import random

    from ggufkit.runtime.stops import StopFilter

    rng = random.Random(1)
    for _ in range(400):
        stops = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 40)))
        f, shown, hit, pos, expected = StopFilter(stops), [], False, 0, text
        while pos < len(text) and not hit:
            start, pos = pos, pos + rng.randint(1, 5)  # a token's text: one to five characters
            piece, hit = f.feed(text[start:pos])
            shown.append(piece)
            found = [i for i in (text[:pos].find(s) for s in stops) if i >= 0]
            if found:
                expected = text[:min(found)]
            assert hit == bool(found) and len(f._held) < max(map(len, stops)), (stops, text)
        if not hit:
            shown.append(f.flush())
        assert "".join(shown) == expected, (stops, text)


@NEEDS_GPU
def test_greedy_shortcut_over_gpu_logits_picks_what_the_graph_picks(cli, model):
    """Every layer on the GPU, greedy picked on the CPU by the shortcut (logits copied back) or inside
    llama.cpp's graph: the same tokens."""
    shortcut = _json(cli("run", model, *PROMPT, "--temp", "0", "-ngl", "all", "--no-backend-sampling"))
    in_graph = _json(cli("run", model, *PROMPT, "--temp", "0", "-ngl", "all", "--backend-sampling"))
    assert shortcut["generated_ids"] == in_graph["generated_ids"] and shortcut["generated_tokens"] == 24
