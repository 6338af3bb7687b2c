"""`ggufkit run --interactive`: through a pipe and a pseudo-terminal; KV cache reuse; slash commands."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATS = re.compile(r"prompt (\d+) tokens(?: \(\+(\d+) cached\))? in .* generated (\d+) tokens")


@pytest.fixture(scope="module")
def model(samples):
    return samples.gguf("q4_k_m")


@pytest.fixture
def fmt(tmp_path):
    path = tmp_path / "format.txt"
    path.write_text("{{system}}\nUSER: {{prompt}}\nBOT:")
    return path


def _turns(err: str) -> list[tuple[int, int, int]]:
    """(evaluated, cached, generated) per reply, from the --stats lines."""
    return [(int(m[1]), int(m[2] or 0), int(m[3])) for m in STATS.finditer(err)]


def test_pipe_two_turns_set_reset_save_load_exit(cli, model, fmt, tmp_path):
    saved = tmp_path / "chat.json"
    script = "\n".join([
        "hello the world",
        "/set temp 0.7",
        "/set top_k 5",
        "/show",
        "the world",
        f"/save {saved}",
        "/reset",
        "hello",
        f"/load {saved}",
        "/show",
        "/exit",
        "never read",
    ]) + "\n"
    r = cli("run", model, "-i", "-n", "8", "--temp", "0", "--seed", "1", "--template-file", fmt, "--stats",
            stdin=script)
    assert r.code == 0, r.err
    turns = _turns(r.err)
    assert len(turns) == 3 and all(g == 8 for _, _, g in turns)
    assert turns[1][1] > 0  # the second turn reused the first from the cache
    assert turns[2][1] == 0 or turns[2][0] > 0  # after /reset: rebuilt from the start
    assert "temp=0.7" in r.out and "top_k=5" in r.out
    doc = json.loads(saved.read_text())
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant", "user", "assistant"]
    assert doc["messages"][0]["content"] == "hello the world"
    assert "loaded 4 messages" in r.err
    assert "4 messages" in r.out.split("context:")[-1]  # /show after /load
    assert "never read" not in r.out


def test_kv_cache_reused_between_turns(cli, model, fmt):
    system = " ".join(["the world"] * 150)  # a long system prompt the later turns must not re-evaluate
    script = "hello\nthe world\nhello the\n/exit\n"
    r = cli("run", model, "-i", "-n", "6", "--temp", "0", "--template-file", fmt, "--system", system,
            "--stats", stdin=script)
    assert r.code == 0, r.err
    turns = _turns(r.err)
    assert len(turns) == 3
    first_eval = turns[0][0]
    assert first_eval > 300
    for evaluated, cached, _ in turns[1:]:
        assert evaluated + cached > first_eval  # the whole history is the prompt...
        assert evaluated * 8 < evaluated + cached  # ...but only the new turn (and the reply's tail) was decoded


def test_context_full_drops_oldest_turns_keeps_system(cli, model, fmt):
    script = "".join(f"{' '.join(['hello the world'] * 12)}\n" for _ in range(8)) + "/show\n"
    r = cli("run", model, "-i", "-n", "16", "--temp", "0", "--ctx", "256", "--template-file", fmt,
            "--system", "be brief", "--stats", stdin=script)
    assert r.code == 0, r.err
    assert "dropped the" in r.err
    assert len(_turns(r.err)) == 8  # every turn still answered
    assert '"be brief"' in r.out  # /show: the system prompt survived


def test_hostile_model_template_falls_back_in_chat(cli, tmp_path):
    from ggufkit.samples.make import SIZES
    from ggufkit.samples.model import write_gguf

    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.gguf"
    write_gguf(path, SIZES["tiny"], f16=True,
               chat_template="{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}")
    r = cli("run", path, "-i", "-n", "4", "--temp", "0", stdin="hello\n")
    assert r.code == 0, r.err
    # the sample's LLaMA SentencePiece vocabulary names LLaMA 2's format as the fallback
    assert "warning" in r.err and "__globals__" in r.err and "using llama2" in r.err
    assert r.out.strip()
    assert not marker.exists()


def test_bad_commands_do_not_end_the_session(cli, model):
    script = "/set nosuch 1\n/set temp hot\n/frobnicate\n/load /nonexistent/chat.json\nhello\n"
    r = cli("run", model, "-i", "-n", "4", "--temp", "0", "--stats", stdin=script)
    assert r.code == 0, r.err
    # the error lists what /set takes, as /help does: max_tokens too (issue 17)
    assert "unknown parameter 'nosuch'" in r.err and "max_tokens)" in r.err and "is not a float" in r.err
    assert "unknown command /frobnicate" in r.err and "cannot read" in r.err
    assert len(_turns(r.err)) == 1  # the turn after the errors was still answered


def test_pty_session_with_readline_and_ctrl_c(model, fmt):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable, ["-m", "ggufkit", "run", str(model), "-i", "-n", "10", "--temp", "0", "--stats",
                         "--template-file", str(fmt), "--ctx", "8192"],
        cwd=str(ROOT), env={**os.environ, "TERM": "dumb"}, encoding="utf-8", timeout=60)
    try:
        child.expect("/help for commands")
        child.expect(">>> ")
        child.sendline("hello the world")
        child.expect(r"generated 10 tokens")
        child.expect(">>> ")
        child.sendline("/set temp 0.9")
        child.expect("temp = 0.9")
        child.expect(">>> ")
        child.sendline("/show")
        child.expect("temp=0.9")
        child.expect(">>> ")
        child.sendline("/set max_tokens -1")  # a reply long enough to interrupt
        child.expect(">>> ")
        child.sendline("the world")
        # Ctrl-C as soon as the reply shows (a fixed sleep let a fast machine finish it first: the sampled reply
        # can meet EOS after ~2000 tokens, 0.4 s at this model's speed)
        child.expect("the world\r?\n")
        child.read_nonblocking(1, timeout=30)
        child.sendintr()
        child.expect(r"reply stopped")
        child.expect(">>> ")
        child.sendintr()  # at the prompt: a hint, not the end
        child.expect("Ctrl-D")
        child.sendline("/set max_tokens 4")
        child.expect(">>> ")
        child.sendline("/reset")
        child.expect("conversation cleared")
        child.expect(">>> ")
        child.sendline("hello")
        child.expect(r"prompt \d+ tokens in")  # nothing cached after /reset
        child.expect(">>> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
