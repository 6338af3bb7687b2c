"""A second newcomer's hour (issue 26), the run and CLI items: usage errors, templates by architecture,
tables at a terminal's width, plurals, outputs into new folders, warnings where a setting cannot apply."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.conftest import CPU_ONLY_BUILD, assert_clean_error


def usage_error(r, *fragments: str) -> None:
    """Exit 2, `ggufkit: error: …` then one hint line, no click Usage block."""
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 2, r.err
    assert lines[0].startswith("ggufkit: error: ") and lines[1].startswith("ggufkit: see `ggufkit"), r.err
    assert "Usage:" not in r.err and "Traceback" not in r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_usage_errors_are_one_line_and_a_hint(cli):
    usage_error(cli("run", "--nosuch"), "run: no such option '--nosuch'")
    usage_error(cli("run", "--sto", "x"), "run: no such option '--sto' (did you mean", "'--stop'")
    usage_error(cli("run", "m.gguf", "-n", "abc"), "run: invalid value for '--max-tokens'", "not a valid integer")
    usage_error(cli("run", "-n"), "run: option '-n' requires an argument")
    usage_error(cli("inspect"), "inspect: missing argument")
    usage_error(cli("inpsect"), "no such command 'inpsect' (did you mean 'inspect'?)")
    assert "ggufkit: see `ggufkit cache --help`" in cli("cache", "lsit").err


def test_misspelled_values_get_a_suggestion(cli, samples):
    model = samples.gguf("f16")
    assert_clean_error(cli("run", model, "--template", "lama2", "-p", "x"), 2, "unknown template 'lama2'",
                       "did you mean llama2")
    assert_clean_error(cli("run", model, "--preset", "precize", "-p", "x"), 2, "did you mean precise")
    assert_clean_error(cli("run", model, "--rpc", "localhost", "-p", "x"), 2, "'localhost' has no port",
                       "HOST:PORT")
    assert_clean_error(cli("bench", model, "--gpu", "bth"), 2, "did you mean both")


@pytest.mark.parametrize("arch, tokenizer, tokens, expected", [
    ("gemma3", "llama", ["<bos>", "<start_of_turn>", "<end_of_turn>"], "gemma"),  # Gemma 3 270M: markers
    ("gemma2", "llama", ["<bos>"], "gemma"),  # the architecture alone
    ("llama", "gpt2", ["<|begin_of_text|>", "<|start_header_id|>"], "llama3"),
    ("llama", "gpt2", ["<|im_start|>", "<|im_end|>"], "chatml"),
    ("phi3", "llama", ["<s>"], "phi3"),
    ("llama", "llama", ["<s>", "</s>", "<unk>"], "llama2"),  # a converted LLaMA / LLaMA 2 file
    ("gpt2", "gpt2", ["<|endoftext|>"], "chatml"),
])
def test_a_model_without_a_template_gets_its_own_format(arch, tokenizer, tokens, expected):
    from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES, default_template

    name, why = default_template(arch, tokenizer, tokens)
    assert name == expected and name in BUILTIN_TEMPLATES and why


def _in_terminal(args: list[str], cols: int = 80) -> str:
    """stdout of `ggufkit ARGS` on a pseudo-terminal COLS wide (what a user's terminal shows)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "ggufkit", *args], stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return out.decode().replace("\r\n", "\n")


def test_tables_fit_an_80_column_terminal(samples, tmp_path):
    listed = _in_terminal(["quantize", "--list"])
    assert max(map(len, listed.splitlines())) <= 80 and "q4_k_m" in listed
    report = _in_terminal(["quantize", str(samples.gguf("f32")), "-t", "q4_k_m", "-t", "q8_0", "--out-dir",
                           str(tmp_path)])
    assert max(map(len, report.splitlines())) <= 80, report
    assert "Q4_K_M\n  output " in report and "tensors Q8_0:" in report


def test_fitted_table_blocks_keep_every_value():
    from ggufkit.cli.output import fitted_table
    from ggufkit.evaluate.report import HEADER

    rows = [["tiny-f16.gguf", "3.76 MiB", "16.00", "5083.8368 ± 12.3456", "base", "-", "-", "-", "-", "812.5"],
            ["tiny-q4_k_m.gguf", "1.17 MiB", "4.93", "5090.1234 ± 12.4567", "+0.00123", "0.018160 ± 0.000123",
             "0.12345", "95.00 %", "1.234 %", "1234.5"]]
    wide = fitted_table(rows, HEADER, 200)
    assert len(wide.splitlines()) == 3 and max(map(len, wide.splitlines())) > 80
    narrow = fitted_table(rows, HEADER, 80)
    assert max(map(len, narrow.splitlines())) <= 80
    for row in rows:
        for h, v in zip(HEADER[1:], row[1:]):
            assert v == "-" or f"{h} {v}" in narrow


@CPU_ONLY_BUILD
def test_bench_gpu_layers_on_a_cpu_build_warns_once(cli, samples):
    r = cli("bench", samples.gguf("f16"), "-p", "0", "-n", "4", "-r", "1", "-ngl", "all", "--format", "json")
    assert r.code == 0, r.err
    assert r.err.count("no GPU support (or sees no GPU): --gpu-layers ignored, running on the CPU") == 1
    quiet = cli("bench", samples.gguf("f16"), "-p", "0", "-n", "4", "-r", "1", "--format", "json")
    assert "--gpu-layers ignored" not in quiet.err  # -ngl not given: nothing to say


def test_chat_show_and_plurals(cli, samples, tmp_path):
    r = cli("run", samples.gguf("f16"), "-i", "--system", "Be brief.", "--template", "chatml",
            stdin=f"/show\n/save {tmp_path / 'x.json'}\n")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "1 message" in r.out and "1 messages" not in r.out and "seed=random" in r.out
    assert f"saved 1 message to {tmp_path / 'x.json'}" in r.err
    starts = {line.index(line.split(":", 1)[1].strip()) for line in lines if ":" in line}
    assert len(starts) == 1, lines  # the values line up


def test_eval_ctx_beyond_training_warns(cli, samples, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello the world " * 50)
    r = cli("eval", samples.gguf("f16"), "-f", text, "--ctx", "4096")
    lines = r.err.strip().splitlines()
    assert lines[0] == ("ggufkit: warning: --ctx 4096 is beyond the 2048 tokens tiny-f16.gguf was trained on: "
                        "the figures then measure how it copes past its training context")
    assert r.code == 2 and "needs at least 8192" in lines[-1]
    assert "warning" not in cli("eval", samples.gguf("f16"), "-f", text, "--ctx", "64").err


def test_outputs_go_into_a_folder_or_a_new_one(cli, samples, tmp_path):
    legacy = samples.ggjt3("q4_0")
    into = tmp_path / "existing"
    into.mkdir()
    assert cli("convert", legacy, "-o", into, "-q").code == 0
    assert [p.name for p in into.iterdir()] == ["tiny-q4_0.ggjt3.gguf"]
    made = tmp_path / "new" / "deeper" / "x.gguf"
    assert cli("convert", legacy, "-o", made, "-q").code == 0 and made.is_file()
    q = tmp_path / "q" / "y.gguf"
    assert cli("quantize", samples.gguf("f16"), "-t", "q8_0", "-o", q, "-q").code == 0 and q.is_file()
    assert cli("quantize", samples.gguf("f16"), "-t", "q8_0", "-o", into, "-q").code == 0
    assert (into / "tiny-Q8_0.gguf").is_file()  # named as --out-dir names it (the source type replaced)
