"""Outputs survive what interrupts them: a full disk (a file-size limit) or SIGKILL leaves no output; Ctrl-C
(SIGINT to the process group, as a terminal sends it) stops convert and quantize at once, leaves nothing
half-written, says in one line what was finished and exits 130."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import assert_clean_error, writing_in

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


def _stopped_when(proc: subprocess.Popen, condition, timeout: float = 60) -> bool:
    """Stop the process group (SIGSTOP) at a moment `condition` holds, and still holds once stopped."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            os.killpg(proc.pid, signal.SIGSTOP)
            if condition():
                return True
            os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.001)
    return False


def _ctrl_c(proc: subprocess.Popen) -> tuple[str, str, float]:
    """SIGINT to the stopped group, as a terminal's Ctrl-C; (stdout, stderr, seconds until it ended)."""
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    return out, err, time.monotonic() - started


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ggufkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_ctrl_c_stops_a_batch_at_once_and_lists_what_was_finished(samples, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    os.link(samples.ggjt3("q4_0"), folder / "a.bin")
    for name in ("b.bin", "c.bin"):
        os.link(samples.ggjt3("f16", "small"), folder / name)
    proc = _start("convert", folder, "--out-dir", out, "-j", "2")
    # stopped while b or c is half written (not in its last fsync, which no program can cut short)
    assert _stopped_when(proc, lambda: (out / "a.gguf").exists() and writing_in(proc.pid, out, 100 << 20)), \
        "never caught writing b or c"
    stdout, stderr, seconds = _ctrl_c(proc)
    assert proc.returncode == 130, stderr
    rows = {r.split()[0]: r for r in stdout.strip().splitlines()[1:]}
    assert rows["a.bin"].split()[:3] == ["a.bin", "a.gguf", "Q4_0"] and rows["a.bin"].endswith("converted")
    done = sorted(k for k, r in rows.items() if r.endswith("converted"))
    stopped = [k for k, r in rows.items() if r.endswith("interrupted: nothing written")]
    assert stopped and len(done) + len(stopped) == len(rows), stdout  # the one caught half-written, at least
    assert stderr.strip().splitlines() == [
        f"ggufkit: interrupted: {len(done)} of 3 files done (listed above); {len(stopped)} stopped mid-way, "
        f"nothing of them written; {3 - len(rows)} not started"]
    # what was finished is there, whole; what was stopped left nothing
    assert sorted(os.listdir(out)) == [f"{k[0]}.gguf" for k in done]
    assert seconds < 5, seconds  # well within a second on a quiet machine (the tests may run under load)


def test_ctrl_c_stops_one_conversion(samples, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = samples.ggjt3("f16", "small")
    proc = _start("convert", src, "-o", out / "x.gguf")
    assert _stopped_when(proc, lambda: writing_in(proc.pid, out, 100 << 20))
    stdout, stderr, seconds = _ctrl_c(proc)
    assert proc.returncode == 130 and stdout == ""
    line, = stderr.strip().splitlines()
    assert line.startswith(f"ggufkit: interrupted: {src} -> {out / 'x.gguf'} stopped after ") and line.endswith(
        " of 212.12 MiB; nothing written"), line
    assert os.listdir(out) == [] and seconds < 5, seconds


def test_ctrl_c_stops_quantize_and_keeps_the_types_finished(samples, tmp_path):
    src, out = samples.gguf("f16"), tmp_path / "out"
    proc = _start("quantize", src, "-t", "q8_0", "-t", "q4_k_m", "--out-dir", out, "--threads", "2")
    first = out / "tiny-Q8_0.gguf"
    # stopped while the llama.cpp child of Q4_K_M runs
    assert _stopped_when(proc, lambda: first.exists() and bool(_children(proc.pid))), "Q4_K_M never seen running"
    stdout, stderr, seconds = _ctrl_c(proc)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["ggufkit: interrupted: 1 of 2 types done (Q8_0); the one in progress "
                                           "was stopped, nothing of it written"]
    assert stdout.splitlines()[1].split()[:2] == ["Q8_0", str(first)]
    assert os.listdir(out) == [first.name]  # no Q4_K_M, whole or partial
    assert seconds < 5, seconds
