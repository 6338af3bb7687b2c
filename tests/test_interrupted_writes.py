"""Outputs survive what interrupts them: a full disk (a file-size limit) or SIGKILL leaves no output."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import assert_clean_error

LIMIT = 1 << 20  # 1 MiB: smaller than any output below


def _limited(*args):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    proc = subprocess.run([sys.executable, "-m", "ggufkit", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)
    return proc


@pytest.mark.parametrize("command", ["convert", "quantize"])
def test_full_disk(samples, tmp_path, command):
    from tests.conftest import Result

    src = samples.ggjt3("f16") if command == "convert" else samples.gguf("f16")
    before = src.read_bytes()
    out = tmp_path / "out.gguf"
    args = [command, src, "-o", out] + (["-t", "q8_0"] if command == "quantize" else [])
    p = _limited(*args)
    r = Result(p.returncode, p.stdout, p.stderr)
    assert_clean_error(r, 1, str(out) if command == "convert" else "")
    assert ("File too large" if command == "convert" else "could not write the output") in r.err
    assert list(tmp_path.iterdir()) == []
    assert src.read_bytes() == before


def test_killed_quantize_leaves_no_output(samples, tmp_path, cli):
    from ggufkit.samples.make import make_sample

    src = tmp_path / "small-f32.gguf"
    make_sample(src, "f32", "gguf", "small")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "ggufkit", "quantize", str(src), "-t", "q4_k_m", "-o",
                             str(out_dir / "q.gguf"), "-q"], start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _children(proc.pid) and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(1.0)  # the llama.cpp child is quantizing: several seconds for this model
    assert proc.poll() is None, "quantize finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its llama.cpp child together
    proc.wait()
    assert not (out_dir / "q.gguf").exists()
    # the next run for the same output sweeps what the killed one left, and succeeds
    assert cli("quantize", src, "-t", "q4_0", "-o", out_dir / "q.gguf", "-q").code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["q.gguf"]


def _children(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().strip()
    except OSError:
        return ""
