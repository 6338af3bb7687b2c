"""`ggufkit run` one-shot: prompt sources, greedy parity with llama-cpp-python, seeds, stops, JSON, errors."""

from __future__ import annotations


import pytest

from tests.conftest import CPU_ONLY_BUILD, assert_clean_error, json_of as _json


@pytest.fixture(scope="module")
def model(samples):
    return samples.gguf("q4_k_m")




def test_prompt_from_argument_streams_only_text(cli, model):
    r = cli("run", model, "-p", "hello the world", "-n", "12", "--temp", "0", "--json")
    doc = _json(r)
    assert doc["generated_tokens"] == 12 and doc["stop_reason"] == "length"
    plain = cli("run", model, "-p", "hello the world", "-n", "12", "--temp", "0")
    assert plain.code == 0 and plain.err == ""  # nothing but the generated text, anywhere
    assert plain.out == _ended(doc["text"]) and doc["text"]


def _ended(text: str) -> str:
    """What stdout holds: the text, ended with a newline when it does not end with one (issue 17)."""
    return text if text.endswith("\n") else text + "\n"


def test_text_ends_with_a_newline_in_a_pipe_so_stats_start_their_own_line(model):
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m ggufkit run {model} -p hello -n 6 --temp 0 --stats 2>&1",
                          shell=True, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1].startswith("ggufkit: load ") and "ggufkit:" not in lines[0]


def test_prompt_from_file_and_stdin_match_argument(cli, model, tmp_path):
    args = ("-n", "10", "--temp", "0", "--json")
    ref = _json(cli("run", model, "-p", "hello the world", *args))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello the world")
    from_file = _json(cli("run", model, "-f", prompt, *args))
    from_dash = _json(cli("run", model, "-p", "-", *args, stdin="hello the world"))
    from_pipe = _json(cli("run", model, *args, stdin="hello the world"))
    for doc in (from_file, from_dash, from_pipe):
        assert doc["generated_ids"] == ref["generated_ids"]
        assert doc["prompt_tokens"] == ref["prompt_tokens"]


def test_greedy_matches_llama_cpp_python(cli, model):
    """--temp 0 produces exactly llama-cpp-python's own greedy tokens for the same prompt."""
    import llama_cpp

    n = 40
    doc = _json(cli("run", model, "-p", "hello the world", "-n", str(n), "--temp", "0", "--ctx", "512",
                    "--threads", "2", "--json"))
    # our context leaves flash attention on llama.cpp's "auto", which is on for the CPU backend
    llm = llama_cpp.Llama(str(model), n_ctx=512, n_batch=512, n_threads=2, n_threads_batch=2, flash_attn=True,
                          verbose=False)
    ref = []
    for tok in llm.generate(llm.tokenize(b"hello the world"), temp=0.0, repeat_penalty=1.0):
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok) or len(ref) == n:
            break
        ref.append(tok)
    assert doc["generated_ids"] == ref
    assert doc["text"] == llm.detokenize(ref).decode("utf-8", "replace")
    assert doc["prompt_tokens"] == len(llm.tokenize(b"hello the world"))


def test_seed_reproducible_and_seeds_differ(cli, model):
    args = ("run", model, "-p", "hello", "-n", "24", "--temp", "1.5", "--top-k", "0", "--top-p", "1",
            "--min-p", "0", "--json")
    a = _json(cli(*args, "--seed", "7"))
    b = _json(cli(*args, "--seed", "7"))
    c = _json(cli(*args, "--seed", "8"))
    assert a["generated_ids"] == b["generated_ids"]
    assert a["generated_ids"] != c["generated_ids"]


def test_stop_string_cuts_output_before_it(cli, model):
    base = _json(cli("run", model, "-p", "hello the world", "-n", "40", "--temp", "0", "--json"))
    text = base["text"]
    stop = text[len(text) // 2: len(text) // 2 + 3]
    assert len(stop.strip()) >= 2
    r = cli("run", model, "-p", "hello the world", "-n", "40", "--temp", "0", "--stop", stop, "--stop", "zzzz")
    assert r.code == 0
    assert r.out == _ended(text[: text.index(stop)])
    doc = _json(cli("run", model, "-p", "hello the world", "-n", "40", "--temp", "0", "--stop", stop, "--json"))
    assert doc["stop_reason"] == "stop" and _ended(doc["text"]) == r.out


def test_json_has_counts_and_timings(cli, model):
    doc = _json(cli("run", model, "-p", "hello", "-n", "5", "--seed", "1", "--json"))
    assert set(doc) >= {"text", "stop_reason", "prompt_tokens", "generated_tokens", "timings"}
    assert doc["prompt_tokens"] == 2 and doc["generated_tokens"] == 5
    t = doc["timings"]
    assert t["load_ms"] > 0 and t["prompt_ms"] > 0 and t["generation_ms"] > 0
    assert t["generation_tokens_per_s"] > 0
    # the loop decodes every generated token but the last (it ended the run): speed counts what was timed
    assert t["decoded_tokens"] == 4
    assert t["generation_tokens_per_s"] == pytest.approx(4 * 1000 / t["generation_ms"], rel=0.02)


def test_stats_go_to_stderr(cli, model):
    r = cli("run", model, "-p", "hello", "-n", "6", "--temp", "0", "--stats")
    assert r.code == 0
    assert "generated 6 tokens" in r.err and "(5 decoded)" in r.err and "t/s" in r.err and "load" in r.err
    assert "t/s" not in r.out


def test_every_sampling_flag_reaches_the_chain(cli, model, tmp_path):
    grammar = tmp_path / "yes.gbnf"
    grammar.write_text('root ::= ("yes" | "no") " " root | "."\n')
    r = cli("run", model, "-p", "hello", "-n", "8", "-v", "--seed", "5", "--top-k", "17", "--top-p", "0.83",
            "--min-p", "0.07", "--typical", "0.91", "--temp", "0.55", "--repeat-penalty", "1.3",
            "--repeat-last-n", "33", "--presence-penalty", "0.4", "--frequency-penalty", "0.2",
            "--grammar-file", grammar)
    assert r.code == 0, r.err
    chain = next(line for line in r.err.splitlines() if "sampler:" in line)
    for part in ("grammar", "top_k(17)", "top_p(0.83)", "min_p(0.07)", "typical(0.91)", "temp(0.55)",
                 "repeat=1.3", "last_n=33", "present=0.4", "freq=0.2", "dist(seed=5)"):
        assert part in chain, (part, chain)
    assert set(r.out.replace("yes", "").replace("no", "").replace(" ", "").replace(".", "").rstrip("\n")) == set()
    for n, name in (("1", "mirostat(tau=3.0, eta=0.2)"), ("2", "mirostat_v2(tau=3.0, eta=0.2)")):
        r = cli("run", model, "-p", "hello", "-n", "4", "-v", "--mirostat", n, "--mirostat-tau", "3",
                "--mirostat-eta", "0.2")
        assert r.code == 0 and name in r.err, r.err


@CPU_ONLY_BUILD
def test_gpu_layers_on_cpu_build_warns_once_and_runs(cli, model):
    r = cli("run", model, "-p", "hello", "-n", "4", "--temp", "0", "-ngl", "all")
    assert r.code == 0 and r.out
    assert r.err.count("no GPU support") == 1


def test_mmap_and_mlock_flags_run(cli, model):
    a = _json(cli("run", model, "-p", "hello", "-n", "6", "--temp", "0", "--json"))
    b = _json(cli("run", model, "-p", "hello", "-n", "6", "--temp", "0", "--json", "--no-mmap", "--mlock"))
    assert a["generated_ids"] == b["generated_ids"]


def test_legacy_ggjt3_is_converted_with_notice(cli, samples, tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    legacy = samples.ggjt3("q4_0")
    first = cli("run", legacy, "-p", "hello", "-n", "6", "--temp", "0")
    assert first.code == 0, first.err
    assert "GGJT v3" in first.err and first.err.count("\n") == 1  # the one-line conversion notice
    again = cli("run", legacy, "-p", "hello", "-n", "6", "--temp", "0")
    assert again.code == 0 and again.err == "" and again.out == first.out


def test_verbose_llama_shows_the_log(cli, model):
    r = cli("run", model, "-p", "hello", "-n", "2", "--verbose-llama")
    assert r.code == 0 and "llama_" in r.err


@pytest.mark.parametrize("case", ["missing", "truncated", "not-a-model", "directory"])
def test_bad_model_files(cli, model, tmp_path, case):
    path = tmp_path / "m.gguf"
    if case == "truncated":
        path.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif case == "not-a-model":
        path.write_text("this is not a model at all")
    elif case == "directory":
        path.mkdir()
    r = cli("run", path, "-p", "hello")
    assert_clean_error(r, 2, str(path))


def test_prompt_longer_than_context(cli, model):
    r = cli("run", model, "-p", "hello " * 400, "--ctx", "256")
    assert_clean_error(r, 2, "context holds 256")


def test_usage_errors(cli, model, tmp_path):
    assert_clean_error(cli("run", model, "-p", "x", "-f", tmp_path / "p.txt"), 2, "not both")
    assert_clean_error(cli("run", model, "-f", tmp_path / "none.txt"), 2, "none.txt")
    assert_clean_error(cli("run", model, "-p", "x", "--top-p", "1.5"), 2, "top_p")
    assert_clean_error(cli("run", model, "-p", "x", "--mirostat", "3"), 2, "mirostat")
    assert_clean_error(cli("run", model, "-p", "x", "-ngl", "lots"), 2, "gpu-layers")
    assert_clean_error(cli("run", "-p", "x"), 2, "MODEL")
    bad = tmp_path / "bad.gbnf"
    bad.write_text("root ::= (")
    assert_clean_error(cli("run", model, "-p", "x", "--grammar-file", bad), 2, "grammar", str(bad))
    assert_clean_error(cli("run", model, "-p", "x", "--lora", tmp_path / "nope.gguf"), 2, "LoRA")


def test_model_llama_cpp_refuses(cli, tmp_path):
    """A well-formed GGUF that llama.cpp cannot run: one line, exit 1."""
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "odd.gguf"
    w = GGUFWriter(str(path), "nosucharch")
    w.add_token_list(["a", "b"])
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert_clean_error(cli("run", path, "-p", "hello"), 1, str(path), "could not load")


def test_abort_inside_llama_cpp_reaches_the_user(cli, tmp_path):
    """A real GGML_ASSERT inside llama.cpp's computation (a negative RMS epsilon, which the file format
    allows) ends with one clear line and exit 1, not a bare "Aborted" (found by the fuzz harness)."""
    from dataclasses import replace

    from ggufkit.samples.model import SIZES, write_gguf

    path = tmp_path / "negative-eps.gguf"
    write_gguf(path, replace(SIZES["tiny"], rms_eps=-1.0), f16=True)
    r = cli("run", path, "-p", "hello", "-n", "2")
    assert_clean_error(r, 1, str(path), "llama.cpp aborted", "GGML_ASSERT(eps >= 0.0f) failed")


def _write_lora(base, path, rank=8):
    """A LoRA adapter for the sample model (general.type "adapter"), random but well-formed."""
    import numpy as np
    from gguf import GGUFWriter

    from ggufkit.formats.gguf_file import read_gguf

    w = GGUFWriter(str(path), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    rng = np.random.default_rng(0)
    for t in read_gguf(base).tensors:
        if t.name.endswith(("attn_q.weight", "ffn_down.weight")):
            ne0, ne1 = t.shape
            w.add_tensor(t.name + ".lora_a", rng.standard_normal((rank, ne0)).astype(np.float32) * 0.5)
            w.add_tensor(t.name + ".lora_b", rng.standard_normal((ne1, rank)).astype(np.float32) * 0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_lora_adapter_and_scale(cli, samples, tmp_path):
    base = samples.gguf("f16")
    lora = _write_lora(base, tmp_path / "adapter.gguf")
    args = ("run", base, "-p", "hello", "-n", "12", "--temp", "0", "--json")
    plain = _json(cli(*args))["generated_ids"]
    assert _json(cli(*args, "--lora", lora))["generated_ids"] != plain
    assert _json(cli(*args, "--lora", lora, "--lora-scale", "0"))["generated_ids"] == plain
    assert_clean_error(cli(*args, "--lora", base), 1, "LoRA", str(base))  # a model is not an adapter
