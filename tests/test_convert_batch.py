"""`convert` of many files: output names that clash are found before any work, --json answers on failure
too, and --dry-run shows the plan (names, what each tensor becomes, clashes, space) and writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ggufkit.formats.gguf_file import read_gguf
from tests.conftest import assert_clean_error


def _clashing_folder(samples, tmp_path: Path) -> Path:
    """llama-ggml-q4_0.bin and llama-q4_0.bin both make llama-q4_0.gguf (two different models: Q4_0, Q8_0)."""
    folder = tmp_path / "in"
    folder.mkdir()
    os.link(samples.ggjt3("q4_0"), folder / "llama-ggml-q4_0.bin")
    os.link(samples.ggjt3("q8_0"), folder / "llama-q4_0.bin")
    return folder


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_clashing_output_names_refuse_the_batch_before_any_work(samples, cli, tmp_path, jobs):
    folder = _clashing_folder(samples, tmp_path)
    out = tmp_path / "out"
    r = cli("convert", folder, "--out-dir", out, "-j", jobs)
    assert_clean_error(r, 2, f"{folder / 'llama-ggml-q4_0.bin'} and {folder / 'llama-q4_0.bin'} would both be "
                             f"written to {out / 'llama-q4_0.gguf'}: nothing was converted", "--distinct-names")
    assert r.out == "" and not out.exists()


def test_distinct_names_keep_every_output(samples, cli, tmp_path):
    folder = _clashing_folder(samples, tmp_path)
    out = tmp_path / "out"
    r = cli("convert", folder, "--out-dir", out, "-j", "2", "--distinct-names", "--verify")
    assert r.code == 0, r.err
    assert r.err.strip() == (f"ggufkit: {folder / 'llama-q4_0.bin'}: its output would be llama-q4_0.gguf, as "
                             f"{folder / 'llama-ggml-q4_0.bin'}'s is: writing llama-q4_0-2.gguf")
    header, *rows = r.out.splitlines()
    assert header.split() == ["file", "output", "ftype", "size", "seconds", "verified", "status"]
    assert [row.split()[:3] for row in rows] == [["llama-ggml-q4_0.bin", "llama-q4_0.gguf", "Q4_0"],
                                                 ["llama-q4_0.bin", "llama-q4_0-2.gguf", "Q8_0"]]
    assert all("21 tensors, max diff 0" in row and row.endswith("converted") for row in rows)
    # each input's own output: nothing was overwritten by the other
    assert read_gguf(out / "llama-q4_0.gguf").kv["general.file_type"] == 2
    assert read_gguf(out / "llama-q4_0-2.gguf").kv["general.file_type"] == 7
    assert sorted(p.name for p in out.iterdir()) == ["llama-q4_0-2.gguf", "llama-q4_0.gguf"]


def test_json_answers_a_failure_too(samples, cli, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(samples.ggjt3("q4_0").read_bytes()[:5000])
    r = cli("convert", bad, "-o", tmp_path / "x.gguf", "--json")
    assert_clean_error(r, 2, "truncated")
    d = json.loads(r.out)
    assert (d["input"], d["status"], d["tensors"]) == (str(bad), "failed", 0)
    assert "truncated" in d["message"] and d["message"] in r.err
    assert list(tmp_path.iterdir()) == [bad]


def test_dry_run_shows_the_plan_and_writes_nothing(samples, cli, tmp_path):
    folder = _clashing_folder(samples, tmp_path)
    os.link(samples.era("GGJT", 1, "q4_1"), folder / "old.bin")
    (folder / "notes.txt").write_text("not a model")
    out = tmp_path / "out"
    r = cli("convert", folder, "--out-dir", out, "--dry-run", "--json")
    assert_clean_error(r, 2, "would both be written to")  # as the real run: refused, unless --distinct-names
    plan = json.loads(r.out)
    assert not out.exists()
    files = {Path(f["input"]).name: f for f in plan["files"]}
    assert [(f["output"], f["status"]) for f in files.values()] == [
        (str(out / "llama-q4_0.gguf"), "convert"), (str(out / "llama-q4_0-2.gguf"), "convert"),
        (str(out / "old.gguf"), "convert")]
    assert plan["clashes"] == [{"inputs": [str(folder / "llama-ggml-q4_0.bin"), str(folder / "llama-q4_0.bin")],
                                "output": str(out / "llama-q4_0.gguf"), "renamed_to": None}]
    old = files["old.bin"]
    assert (old["source"], old["file_type"], old["loss"]) == ("GGJT v1", "Q4_1", "scales rounded to f16")
    assert old["actions"] == {"copy": 5, "repack": 16, "requantize": 0}
    by_name = {t["name"]: t for t in old["tensors"]}
    assert by_name["layers.0.attention.wq.weight"] == {
        "name": "layers.0.attention.wq.weight", "gguf_name": "blk.0.attn_q.weight", "type": "Q4_1",
        "to_type": "Q4_1", "action": "repack", "bytes": 256 * 256 // 32 * 20}
    assert plan["bytes_needed"] == sum(f["bytes"] for f in files.values()) and plan["free_bytes"] > 0

    # the same plan carried out: the sizes it gave are within a few percent of the files written
    r = cli("convert", folder, "--out-dir", out, "--distinct-names", "--dry-run")
    assert r.code == 0, r.err
    assert "--distinct-names writes the later to llama-q4_0-2.gguf" in r.out and not out.exists()
    assert cli("convert", folder, "--out-dir", out, "--distinct-names", "-q").code == 0
    for f in files.values():
        written = Path(f["output"]).stat().st_size
        assert abs(f["bytes"] - written) < 0.12 * written, (f["output"], f["bytes"], written)


def test_dry_run_of_one_file_lists_its_tensors(samples, cli, tmp_path):
    r = cli("convert", samples.era("GGJT", 1, "q4_2"), "-o", tmp_path / "x.gguf", "--dry-run")
    assert r.code == 0, r.err
    assert "blk.0.attn_q.weight" in r.out and "Q4_2  Q4_0  requantize" in r.out
    assert r.out.rstrip().splitlines()[-1].startswith("dry run: nothing written; 1 file(s) would take ~")
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "x.gguf"
    existing.write_bytes(b"keep")
    assert_clean_error(cli("convert", samples.era("GGJT", 1, "q4_2"), "-o", existing, "--dry-run"), 2, "--force")
    assert existing.read_bytes() == b"keep"
