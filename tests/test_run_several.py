"""`ggufkit run A B ...`: SmolLM2-135M-Instruct's F16 base and its Q4_K_M child answer in turn, each
exactly as `run` of that model alone; chats side by side and as a group; loaded together or one at a time.

Greedy, a 512-token context and one thread, as in test_real_models.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ggufkit import models

from .conftest import CPU_ONLY_BUILD, NEEDS_GPU, Result, assert_clean_error, json_of

RUN = ("--temp", "0", "--ctx", "512", "--threads", "1", "-n", "12")
QUESTION = "What is the capital of Japan?"
TURNS = ["What is the capital of Japan?", "And the capital of France?"]
ONE_AT_A_TIME = "ggufkit: GGUFKIT_ONE_AT_A_TIME is set: loading the models one at a time"


@pytest.fixture(scope="module")
def pair(children):
    """The F16 base and its Q4_K_M child, and the names run gives them side by side."""
    return (models.model_path("smollm2", f16=True), children["Q4_K_M"]["outputs"][0]), ("F16", "Q4_K_M")


def one_at_a_time(*args, stdin: str | None = None) -> Result:
    proc = subprocess.run([sys.executable, "-m", "ggufkit", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "GGUFKIT_ONE_AT_A_TIME": "1"})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_one_shot_answers_equal_each_models_own_run(cli, pair):
    """Chat (--json) and completion (text, each under its header), the second loaded one at a time."""
    (base, child), _ = pair
    completion = "The capital of France is"
    docs = json_of(cli("run", base, child, "--chat", "-p", QUESTION, *RUN, "--json"))
    alone = [json_of(cli("run", m, "--chat", "-p", QUESTION, *RUN, "--json")) for m in (base, child)]
    assert [d["model"] for d in docs] == [str(base), str(child)]
    assert [(d["name"], d["file_type"]) for d in docs] == [("F16", "F16"), ("Q4_K_M", "Q4_K_M")]
    assert [d["text"] for d in docs] == [d["text"] for d in alone] and "Tokyo" in docs[0]["text"]
    assert [d["generated_ids"] for d in docs] == [d["generated_ids"] for d in alone]

    r = one_at_a_time("run", base, child, "-p", completion, *RUN)
    assert r.code == 0, r.err
    texts = [cli("run", m, "-p", completion, *RUN).out for m in (base, child)]
    assert r.out == f"==> {base} (F16) <==\n{texts[0]}\n==> {child} (Q4_K_M) <==\n{texts[1]}"
    assert r.err.count(ONE_AT_A_TIME) == 1


def test_side_by_side_chat_equals_each_models_own_chat(cli, pair, tmp_path):
    """Two piped turns to both: each model's replies are its own piped chat's, together or one at a time
    (then each re-reads its history when it is loaded again)."""
    (base, child), names = pair
    alone = []
    for m in (base, child):
        r = cli("run", m, "-i", *RUN, stdin="\n".join(TURNS) + "\n")
        assert r.code == 0, r.err
        alone.append(r.out.splitlines())
    expected = [f"{name}: {alone[i][turn]}" for turn in range(2) for i, name in enumerate(names)]
    for how, runner in (("together", cli), ("one at a time", one_at_a_time)):
        saved = tmp_path / f"{how}.json"
        r = runner("run", base, child, "-i", *RUN, stdin="\n".join([*TURNS, f"/save {saved}"]) + "\n")
        assert r.code == 0, (how, r.err)
        assert r.out.splitlines() == expected, how
        doc = json.loads(saved.read_text())
        assert doc["mode"] == "side-by-side" and doc["models"] == list(names)
        assert [(m["role"], m.get("speaker")) for m in doc["messages"]] == [
            ("user", None), ("assistant", "F16"), ("assistant", "Q4_K_M")] * 2


def test_group_chat_over_two_turns_keeps_the_speakers(cli, pair, tmp_path):
    """--group: the first model's first reply is its own chat's; the second model hears the first (its
    prompt is longer than the first's); /to asks one; /save keeps who said what and /load brings it back."""
    (base, child), names = pair
    saved, again = tmp_path / "group.json", tmp_path / "again.json"
    script = [*TURNS, "/to 2 Say hello.", "/to nosuch hello", "/to Q4 Say hi.", f"/save {saved}", "/reset",
              f"/load {saved}", f"/save {again}", "/show"]
    r = cli("run", base, child, "-i", "--group", *RUN, "--stats", stdin="\n".join(script) + "\n")
    assert r.code == 0, r.err
    doc = json.loads(saved.read_text())
    assert doc["mode"] == "group" and doc["models"] == list(names)
    said = [(m["role"], m.get("speaker"), m.get("to")) for m in doc["messages"]]
    assert said == [("user", None, None), ("assistant", "F16", None), ("assistant", "Q4_K_M", None)] * 2 + [
        ("user", None, "Q4_K_M"), ("assistant", "Q4_K_M", None)] * 2  # by number, by the start of a name
    assert "no model called 'nosuch' (models: F16, Q4_K_M)" in r.err
    alone = json_of(cli("run", base, "--chat", "-p", TURNS[0], *RUN, "--json"))
    assert doc["messages"][1]["content"] == alone["text"]
    prompts = [int(line.split("prompt ")[1].split()[0]) for line in r.err.splitlines() if "| generated" in line]
    assert len(prompts) == 6 and prompts[1] > prompts[0]  # Q4_K_M was shown the question and F16's reply
    assert json.loads(again.read_text()) == doc
    assert "mode:      group, 10 messages" in r.out and "[2: Q4_K_M]" in r.out


def test_a_missing_or_broken_second_model_fails_before_any_loading(cli, pair, samples, tmp_path):
    (base, _), _ = pair
    r = cli("run", base, tmp_path / "nope.gguf", "-p", "hi", "-v")
    assert_clean_error(r, 2, str(tmp_path / "nope.gguf"), "No such file")
    assert r.out == ""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(samples.gguf().read_bytes()[:200])
    r = cli("run", base, broken, "-i", "-v", stdin="hello\n")
    assert_clean_error(r, 2, str(broken))  # a header llama.cpp would refuse: named, and nothing loaded (-v tells)
    assert r.out == ""


def test_per_model_settings_and_usage_errors(cli, pair, tmp_path):
    """MODEL@TEMPLATE and MODEL@PRESET set one model's settings; --group needs a chat of several."""
    (base, child), _ = pair
    preset = tmp_path / "short.toml"
    preset.write_text("max_tokens = 2\n")
    docs = json_of(cli("run", f"{base}@chatml", f"{child}@{preset}", "-p", "The capital of France is", *RUN,
                       "--json"))
    assert [d["name"] for d in docs] == ["F16@chatml", "Q4_K_M@short"]
    assert docs[0]["prompt_tokens"] > docs[1]["prompt_tokens"]  # only the first went through a template
    assert docs[0]["generated_tokens"] > 2 == docs[1]["generated_tokens"] and docs[1]["stop_reason"] == "length"
    assert_clean_error(cli("run", base, "-i", "--group"), 2, "--group", "two models or more")
    assert_clean_error(cli("run", base, child, "--group", "-p", "hi"), 2, "--group", "-i")
    assert_clean_error(cli("run", base, f"{child}@nosuch", "-p", "hi"), 2, "nosuch", "built-in presets")


@CPU_ONLY_BUILD
def test_gpu_layers_on_a_cpu_build_warn_once_per_model(pair):
    """Loaded one at a time, each model loads twice here (checked at the start, then for its reply)."""
    (base, child), names = pair
    r = one_at_a_time("run", base, child, "-i", "-ngl", "all", *RUN[:-2], "-n", "2", stdin="hello\n")
    assert r.code == 0, r.err
    assert [line.split(":")[1].strip() for line in r.err.splitlines() if "no GPU support" in line] == list(names)
    assert [line.split(":")[0] for line in r.out.splitlines()] == list(names)


@NEEDS_GPU
def test_several_models_on_the_gpu_answer_as_each_alone(cli, pair):
    (base, child), _ = pair
    r = cli("run", base, child, "--chat", "-p", QUESTION, *RUN, "-ngl", "all", "--json", "-v", "--verbose-llama")
    docs = json_of(r)
    assert "of GPU memory" in r.err and r.err.count("offloaded") >= 2, r.err
    alone = [json_of(cli("run", m, "--chat", "-p", QUESTION, *RUN, "-ngl", "all", "--json")) for m in (base, child)]
    assert [d["text"] for d in docs] == [d["text"] for d in alone] and "Tokyo" in docs[0]["text"]
    forced = one_at_a_time("run", base, child, "-i", *RUN, "-ngl", "all", stdin="\n".join(TURNS) + "\n")
    together = cli("run", base, child, "-i", *RUN, "-ngl", "all", stdin="\n".join(TURNS) + "\n")
    assert forced.code == together.code == 0, forced.err + together.err
    assert forced.out == together.out and len(forced.out.splitlines()) == 4


def test_pty_ctrl_c_ends_the_turn(samples, tmp_path):
    """On a terminal: the models are named at the start; Ctrl-C stops the reply being written and the
    models after it do not answer that turn; the chat goes on. (The tiny random samples: fast.)"""
    pexpect = pytest.importorskip("pexpect")
    fmt, saved = tmp_path / "format.txt", tmp_path / "chat.json"
    fmt.write_text("USER: {{prompt}}\nBOT:")
    child = pexpect.spawn(
        sys.executable, ["-m", "ggufkit", "run", str(samples.gguf("q4_k_m")), str(samples.gguf("f16")), "-i",
                         "--temp", "0", "--template-file", str(fmt), "--ctx", "8192"],
        env={**os.environ, "TERM": "dumb"}, encoding="utf-8", timeout=60)
    try:
        child.expect("chatting side-by-side with 1: q4_k_m .*, 2: f16 ")
        child.expect(">>> ")
        child.sendline("the world")  # no end of text in sight: long enough to interrupt
        child.expect("q4_k_m: ")
        time.sleep(0.5)
        child.sendintr()
        child.expect(r"q4_k_m: \(reply stopped; the turn ends here\)")
        child.expect(">>> ")
        child.sendline("/set max_tokens 3")
        child.expect(">>> ")
        child.sendline("/to f hello")
        child.expect("f16: ")
        child.expect(">>> ")
        child.sendline(f"/save {saved}")
        child.expect("saved 4 messages")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    said = [(m["role"], m.get("speaker"), m.get("to")) for m in json.loads(saved.read_text())["messages"]]
    assert said == [("user", None, None), ("assistant", "q4_k_m", None), ("user", None, "f16"),
                    ("assistant", "f16", None)]


def test_views_of_one_transcript():
    """What each model is shown of a transcript: side by side, its own turns; in a group, everything."""
    from ggufkit.runtime.transcript import Entry, group_view, side_view

    t = [Entry("user", "Q1"), Entry("assistant", "a1", "A"), Entry("assistant", "b1", "B"),
         Entry("user", "hi", to="B"), Entry("assistant", "b2", "B"), Entry("user", "Q3")]
    assert side_view(t, "A") == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "a1"},
                                 {"role": "user", "content": "Q3"}]
    assert [m["role"] for m in side_view(t, "B")] == ["user", "assistant"] * 2 + ["user"]
    assert group_view(t, "A") == [
        {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "B: b1\n\nUser (to B): hi\n\nB: b2\n\nUser: Q3"}]
    assert group_view(t, "B")[:2] == [{"role": "user", "content": "User: Q1\n\nA: a1"},
                                      {"role": "assistant", "content": "b1"}]
    solo = [Entry("user", "Q1"), Entry("assistant", "a1"), Entry("user", "Q2")]  # a one-model chat /load-ed
    assert side_view(solo, "A") == group_view(solo, "B") == [
        {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "Q2"}]


def test_a_saved_transcript_with_a_bad_speaker_is_refused(tmp_path):
    from ggufkit.errors import BadInputError
    from ggufkit.runtime.transcript import load

    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"format": "ggufkit-chat", "version": 1, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "speaker": 3}]}))
    with pytest.raises(BadInputError, match="message 1 has a speaker"):
        load(path)


def test_memory_plan_fits_small_models_and_can_be_forced(samples):
    from ggufkit.formats.gguf_file import read_gguf
    from ggufkit.runtime.memory_plan import ONE_AT_A_TIME_ENV, plan
    from ggufkit.runtime.settings import RunSettings

    g = read_gguf(samples.gguf())
    p = plan([(g, RunSettings()), (g, RunSettings())], environ={})
    assert p.together and p.reason is None and p.gpu_need == 0 and 0 < p.ram_need < (p.ram_free or 1 << 62)
    p = plan([(g, RunSettings())], environ={ONE_AT_A_TIME_ENV: "1"})
    assert not p.together and ONE_AT_A_TIME_ENV in p.reason
    remote = plan([(g, RunSettings(rpc=("127.0.0.1:9",), gpu_layers="all"))], environ={})  # nothing connects
    assert remote.together and remote.ram_need == remote.gpu_need == 0  # every layer on the servers
    huge = RunSettings(ctx=1 << 40)  # an estimate no machine holds
    p = plan([(g, huge)], environ={})
    assert p.ram_free is None or (not p.together and "RAM" in p.reason)
