"""What a newcomer hit in the first hour (issue 17), driven through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error


def test_a_misspelled_command_gets_one_hint(cli):
    r = cli("inpsect")
    assert r.code == 2 and r.err.lower().count("did you mean") == 1 and "did you mean 'inspect'?" in r.err
    sub = cli("cache", "lsit")
    assert sub.code == 2 and sub.err.lower().count("did you mean") == 1


def test_the_cli_imports_without_deprecation_warnings():
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import ggufkit.cli.app"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory nothing can be written into: a read-only tmpfs where we are root (root ignores modes),
    else a 0555 directory."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("root without the right to mount a read-only tmpfs")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_every_writing_command_says_cannot_write_into_a_read_only_directory(cli, samples, readonly_dir, monkeypatch):
    gguf, legacy = samples.gguf("f16"), samples.ggjt3("q4_0")
    monkeypatch.setenv("GGUFKIT_CACHE", str(readonly_dir / "cache"))
    cases = [
        ("sample", readonly_dir / "x.gguf"),
        ("sample", readonly_dir / "x.bin", "--format", "ggjt1"),
        ("quantize", legacy, "-t", "q8_0", "-o", readonly_dir / "y.gguf"),
        ("quantize", gguf, "-t", "q8_0", "--out-dir", readonly_dir / "new"),
        ("convert", legacy, "-o", readonly_dir / "z.gguf"),
        ("convert", legacy, "--out-dir", readonly_dir),
        ("bench", gguf, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "-o", readonly_dir / "b.json"),
        ("run", legacy, "-p", "hi", "-n", "2"),  # its conversion cache
        ("split", gguf, "--max-tensors", "8", "-o", readonly_dir / "s"),
        ("edit", gguf, "-o", readonly_dir / "e.gguf", "--set", "general.name=x"),
        ("quantize", gguf, "-t", "q8_0", "-o", readonly_dir / "q.gguf", "--split-max-size", "1M"),
    ]
    for args in cases:
        r = cli(*args)
        assert_clean_error(r, 1, "cannot write: ")
        assert "[1/1]" not in r.err  # bench: refused before measuring
    dbg = cli("sample", readonly_dir / "x.gguf", "--debug")
    assert "run with --debug" not in dbg.err


def test_out_dir_is_created(cli, samples, tmp_path):
    q = cli("quantize", samples.gguf("f16"), "-t", "q8_0", "--out-dir", tmp_path / "new" / "q")
    assert q.code == 0, q.err
    assert (tmp_path / "new" / "q" / "tiny-Q8_0.gguf").is_file()
    c = cli("convert", samples.ggjt3("q4_0"), "--out-dir", tmp_path / "new" / "c", "-q")
    assert c.code == 0, c.err
    assert [p.name for p in (tmp_path / "new" / "c").iterdir()] == ["tiny-q4_0.ggjt3.gguf"]
    dry = cli("quantize", samples.gguf("f16"), "-t", "q8_0", "--out-dir", tmp_path / "dry", "--dry-run")
    assert dry.code == 0 and not (tmp_path / "dry").exists()


def test_a_context_llama_cpp_enlarges_is_said_once(cli, samples):
    r = cli("run", samples.gguf("f16"), "-p", "hi", "-n", "2", "--ctx", "2")
    assert r.code == 0 and r.err.splitlines() == [
        "ggufkit: warning: --ctx 2: llama.cpp made the context 256 tokens (a multiple of 256)"]


def test_help_fits_80_columns_without_cut_names_or_broken_sentences(samples):
    """Every command's --help at 80 columns: no option name or word cut with '…', and docstring
    paragraphs wrapped by the renderer, not at the source's line breaks."""
    env = {**os.environ, "COLUMNS": "80"}
    for command in ([], ["inspect"], ["convert"], ["quantize"], ["run"], ["bench"], ["sample"], ["doctor"],
                    ["cache"], ["cache", "list"], ["cache", "rm"], ["cache", "prune"], ["split"], ["merge"], ["edit"],
                    ["diff"]):
        out = subprocess.run([sys.executable, "-m", "ggufkit", *command, "--help"], capture_output=True, text=True,
                             env=env).stdout
        assert "…" not in out, command
        assert max(len(line) for line in out.splitlines()) <= 80, command
    run_help = subprocess.run([sys.executable, "-m", "ggufkit", "run", "--help"], capture_output=True, text=True,
                              env=env).stdout
    assert "unless --chat, --template, --template-file" in run_help  # was broken after "--template,"


def _complete(words: str, cwd=None) -> list[str]:
    """What the shell completion (`ggufkit --install-completion`, bash) offers for the last word of `words`."""
    root = str(Path(__file__).resolve().parents[1])  # this checkout's ggufkit, from any working directory
    env = {**os.environ, "PYTHONPATH": root, "_GGUFKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    out = subprocess.run([sys.executable, "-m", "ggufkit"], env=env, capture_output=True, text=True, cwd=cwd)
    return out.stdout.split()


def test_shell_completion_completes_values(tmp_path):
    assert _complete("ggufkit quantize m.gguf -t q4_k") == ["q4_k_s", "q4_k_m", "q4_k"]
    assert _complete("ggufkit sample m.gguf -t iq2") == ["iq2_xxs", "iq2_xs", "iq2_s", "iq2_m"]
    assert _complete("ggufkit run m.gguf --template ch") == ["chatml"]
    (tmp_path / "mine.toml").write_text("temp = 0.1\n")
    assert _complete("ggufkit run m.gguf --preset ", cwd=tmp_path) == ["precise", "balanced", "creative", "mine.toml"]
    assert _complete("ggufkit bench m.gguf --format j") == ["json", "jsonl"]
    assert _complete("ggufkit sample m.gguf --format ggjt") == ["ggjt1", "ggjt2", "ggjt3"]
    assert _complete("ggufkit convert m.bin --arch gpt") == ["gpt2", "gptneox", "gptj"]
    assert _complete("ggufkit sample m.bin --family fal") == ["falcon7", "falcon40"]
    assert _complete("ggufkit models pull sm") == ["smollm2"]


def test_the_demo_log_shows_commands_that_paste_back():
    demo = Path(__file__).resolve().parents[1] / "scripts" / "demo.sh"
    script = ('source <(sed -n "/^quote()/,/^}/p" "$1"); shift; line=$(quote "$@"); echo "$line"; '
              'eval "set -- $line"; printf "[%s]" "$@"')
    words = ["run", "m.gguf", "-p", "hello the world", "--stop", "it's", "-n", "16"]
    out = subprocess.run(["bash", "-c", script, "bash", str(demo), *words], capture_output=True, text=True).stdout
    shown, parsed = out.splitlines()
    assert "-p 'hello the world'" in shown and parsed == "".join(f"[{w}]" for w in words)
