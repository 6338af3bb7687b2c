"""Every command on every hand-crafted hostile file: a clean error, fast, small, nothing left behind."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ggufkit.cli.app import app
from tests.hostile.cases import CASES, IMATRIX_CASES
from tests.hostile.gguf_raw import RawGguf
from tests.measure import run_measured

TIME_LIMIT_S = 30
RSS_LIMIT = 1 << 30
# The commands that hand a file to llama.cpp, each in a process of its own (a crash there must stay a clean
# error of that process); inspect and convert only read and write files, and run in one process below.
COMMANDS = {
    "quantize": lambda f, out: ["quantize", f, "-t", "q4_0", "-o", out / "out.gguf"],
    "run": lambda f, out: ["run", f, "-p", "hello", "-n", "4"],
    "bench": lambda f, out: ["bench", f, "-p", "8", "-n", "4", "-r", "1", "--format", "json"],
}
REGISTERED = {c.name for c in app.registered_commands}


@pytest.fixture(scope="module")
def hostile_dir(samples, tmp_path_factory) -> dict[str, list[Path]]:
    """Each case's files (a split model's shards: the one commands are given first), written once."""
    raw = RawGguf.load(samples.gguf("f16"))
    legacy = samples.ggjt3("f16").read_bytes()
    folder = tmp_path_factory.mktemp("hostile")
    files = {}
    for case in CASES:
        built = case.build(raw, legacy)
        paths = case.files(folder, built)
        for path, data in zip(paths, built if isinstance(built, list) else [built]):
            if data is not None:
                path.write_bytes(data)
        files[case.name] = [paths[case.given - 1]] + [p for p in paths if p != paths[case.given - 1]]
    return files


PAIRS = [(case, command) for case in CASES for command in COMMANDS if not case.commands or command in case.commands]


@pytest.mark.parametrize("case, command", PAIRS, ids=[f"{c.name}-{cmd}" for c, cmd in PAIRS])
def test_hostile_file(hostile_dir, tmp_path, case, command):
    if command not in REGISTERED:
        pytest.skip(f"`{command}` is not a command yet")
    files = hostile_dir[case.name]
    path = files[0]
    before = {p: p.read_bytes() for p in files if p.exists()}
    out = tmp_path / "out"
    out.mkdir()
    args = [str(a) for a in COMMANDS[command](path, out)]
    r = run_measured([sys.executable, "-m", "ggufkit", *args], TIME_LIMIT_S)
    assert not r.timed_out, f"{command} on {case.name} ran past {TIME_LIMIT_S} s"
    assert r.returncode > 0, f"{command} on {case.name} ({case.breaks}): exit {r.returncode}\n{r.err}"
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ggufkit: error: "), r.err
    assert any(str(p) in lines[0] for p in files), lines[0]  # the file given, or the shard at fault
    assert "Traceback" not in r.err
    assert r.peak_rss < RSS_LIMIT
    assert list(out.iterdir()) == []
    assert {p: p.read_bytes() for p in files if p.exists()} == before


# inspect, convert, split, merge, edit and diff read through the same readers as the commands above: all of them
# over every case in one child process (the start-up of 7 x 60 processes would cost minutes), with the same checks.
NEW_COMMANDS = {
    "inspect": lambda f, out: ["inspect", f],
    "convert": lambda f, out: ["convert", f, "-o", out / "out.gguf"],
    "split": lambda f, out: ["split", f, "--max-tensors", "4", "-o", out / "s"],
    "merge": lambda f, out: ["merge", f, "-o", out / "m.gguf"],
    "edit": lambda f, out: ["edit", f, "-o", out / "e.gguf", "--set", "general.name=x"],
    "edit-in-place": lambda f, out: ["edit", f, "--in-place", "--set", "general.name=x"],
    "diff": lambda f, out: ["diff", f, f],
}


def test_hostile_files_inspect_convert_split_merge_edit_diff(hostile_dir, tmp_path):
    runs = []
    for case in CASES:
        for command, args in NEW_COMMANDS.items():
            if case.commands and command in ("inspect", "convert") and command not in case.commands:
                continue
            out = tmp_path / f"{case.name}.{command}"
            out.mkdir()
            runs.append({"case": case.name, "command": command, "out": str(out),
                         "argv": [str(a) for a in args(hostile_dir[case.name][0], out)]})
    before = {p: p.read_bytes() for files in hostile_dir.values() for p in files if p.exists()}
    r = run_measured([sys.executable, "-m", "tests.hostile.in_process", json.dumps(runs)], TIME_LIMIT_S * 4)
    assert not r.timed_out and r.returncode == 0, r.err[-2000:]
    assert r.peak_rss < RSS_LIMIT
    for run, result in zip(runs, json.loads(r.out)):
        files = hostile_dir[run["case"]]
        what = f"{run['command']} on {run['case']}"
        if run["command"] == "inspect" and next(c for c in CASES if c.name == run["case"]).describable:
            assert result["code"] == 0 and result["err"] == "", (what, result["err"])
            assert re.search(r"^architecture:\s+unknown$", result["out"], re.M), (what, result["out"])
            assert "memory @" not in result["out"]  # no estimate from absurd hparams
            continue
        assert result["code"] == 2, (what, result)
        lines = result["err"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ggufkit: error: "), (what, result["err"])
        assert any(str(p) in lines[0] for p in files), (what, lines[0])
        assert result["seconds"] < TIME_LIMIT_S, what
        assert list(Path(run["out"]).iterdir()) == [], what
    assert {p: p.read_bytes() for files in hostile_dir.values() for p in files if p.exists()} == before
    assert sorted(p.name for p in next(iter(hostile_dir.values()))[0].parent.iterdir()) == sorted(
        p.name for p in before)  # nothing written beside the inputs (edit --in-place)



IMATRIX_COMMANDS = {
    "inspect": lambda f, model, out: ["inspect", f],
    "imatrix": lambda f, model, out: ["imatrix", "--in-file", f, "-o", out / "x.gguf"],
}


@pytest.fixture(scope="module")
def imatrix_hostile_dir(samples, tmp_path_factory) -> Path:
    from ggufkit.imatrix.files import read_matrix, write_dat
    from ggufkit.samples.imatrix import write_synthetic_imatrix

    folder = tmp_path_factory.mktemp("hostile-imatrix")
    seed = write_synthetic_imatrix(samples.gguf("f16"), folder / "seed.gguf")
    write_dat(folder / "seed.dat", read_matrix(seed), "synthetic")
    raw, dat = RawGguf.load(seed), (folder / "seed.dat").read_bytes()
    for case in IMATRIX_CASES:
        (folder / f"{case.name}{case.suffix}").write_bytes(case.build(raw, dat))
    return folder


@pytest.mark.parametrize("command", list(IMATRIX_COMMANDS))
@pytest.mark.parametrize("case", IMATRIX_CASES, ids=[c.name for c in IMATRIX_CASES])
def test_hostile_imatrix(imatrix_hostile_dir, samples, tmp_path, case, command):
    """The importance-matrix reader behind inspect, imatrix --in-file and quantize --imatrix (which reads it
    the same way, first of all: test_imatrix.py runs it on bad matrices)."""
    path = imatrix_hostile_dir / f"{case.name}{case.suffix}"
    before = path.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    args = [str(a) for a in IMATRIX_COMMANDS[command](path, samples.gguf("f16"), out)]
    r = run_measured([sys.executable, "-m", "ggufkit", *args], TIME_LIMIT_S)
    assert not r.timed_out
    assert r.returncode == 2, f"{command} on {case.name} ({case.breaks}): exit {r.returncode}\n{r.err}"
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ggufkit: error: ") and str(path) in lines[0], r.err
    assert r.peak_rss < RSS_LIMIT
    assert list(out.iterdir()) == []
    assert path.read_bytes() == before
