"""Every command on every hand-crafted hostile file: a clean error, fast, small, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ggufkit.cli.app import app
from tests.hostile.cases import CASES
from tests.hostile.gguf_raw import RawGguf

TIME_LIMIT_S = 30
RSS_LIMIT = 1 << 30
COMMANDS = {
    "inspect": lambda f, out: ["inspect", f],
    "convert": lambda f, out: ["convert", f, "-o", out / "out.gguf"],
    "quantize": lambda f, out: ["quantize", f, "-t", "q4_0", "-o", out / "out.gguf"],
    "run": lambda f, out: ["run", f, "-p", "hello", "-n", "4"],
    "bench": lambda f, out: ["bench", f, "-p", "8", "-n", "4", "-r", "1", "--format", "json"],
}
REGISTERED = {c.name for c in app.registered_commands}


@pytest.fixture(scope="module")
def hostile_dir(samples, tmp_path_factory) -> Path:
    raw = RawGguf.load(samples.gguf("f16"))
    legacy = samples.ggjt3("f16").read_bytes()
    folder = tmp_path_factory.mktemp("hostile")
    for case in CASES:
        (folder / f"{case.name}.bin").write_bytes(case.build(raw, legacy))
    return folder


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file(hostile_dir, tmp_path, case, command):
    if command not in REGISTERED:
        pytest.skip(f"`{command}` is not a command yet")
    path = hostile_dir / f"{case.name}.bin"
    before = path.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    args = [str(a) for a in COMMANDS[command](path, out)]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ggufkit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{command} on {case.name} ran past {TIME_LIMIT_S} s")
    elapsed = time.perf_counter() - started
    usage = _child_usage()
    assert proc.returncode > 0, f"{command} on {case.name} ({case.breaks}): exit {proc.returncode}\n{stderr}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ggufkit: error: "), stderr
    assert str(path) in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert elapsed < TIME_LIMIT_S
    assert usage < RSS_LIMIT
    assert list(out.iterdir()) == []
    assert path.read_bytes() == before


def _child_usage() -> int:
    """Peak RSS of the largest child reaped so far (bytes): a bound for the one just run."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
