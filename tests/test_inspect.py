"""`ggufkit inspect` on every format, in text and JSON, and on broken files."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import assert_clean_error


def test_gguf_text(samples, cli):
    r = cli("inspect", samples.gguf("q4_k_m"))
    assert r.code == 0, r.err
    fields = dict(line.split(":", 1) for line in r.out.splitlines())
    assert fields["format"].strip() == "GGUF v3"
    assert fields["architecture"].strip() == "llama"
    assert fields["file type"].strip() == "Q4_K_M"
    assert fields["tensors"].strip().startswith("21")
    assert "bos=1 '<s>'" in fields["vocab"]
    assert fields["chat template"].strip() == "absent"


def test_gguf_json(samples, cli):
    r = cli("inspect", "--json", samples.gguf("q8_0"), "--ctx", "1024")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert (d["format"], d["version"], d["architecture"], d["file_type"], d["file_type_id"]) == ("GGUF", 3, "llama", "Q8_0", 7)
    assert d["vocab_size"] == 512 and d["tokenizer"] == "llama"
    assert d["special_tokens"]["eos"] == {"id": 2, "text": "</s>"}
    assert d["hparams"]["block_count"] == 2 and d["hparams"]["rms_norm_eps"] == 1e-05
    assert len(d["tensors"]) == 21
    assert d["parameters"] == sum(_prod(t["shape"]) for t in d["tensors"])
    m = d["memory"]
    assert m["context"] == 1024
    assert m["kv_cache_bytes"] == 2 * 2 * 1024 * 256 * 2
    assert m["total_bytes"] == m["weights_bytes"] + m["kv_cache_bytes"] + m["margin_bytes"]
    assert m["weights_bytes"] == sum(t["bytes"] for t in d["tensors"])
    assert d["kv"]["tokenizer.ggml.tokens"]["length"] == 512


@pytest.mark.parametrize(
    "container,version,label",
    [("GGML", None, "GGML"), ("GGMF", 1, "GGMF v1"), ("GGJT", 1, "GGJT v1"), ("GGJT", 2, "GGJT v2"), ("GGJT", 3, "GGJT v3")],
)
def test_legacy_formats(samples, cli, container, version, label):
    path = samples.legacy(container, version)
    r = cli("inspect", "--json", path)
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert (d["format"], d["version"]) == (container, version)
    assert d["architecture"] == "llama" and d["file_type"] == "F16"
    assert d["vocab_size"] == 512 and len(d["tensors"]) == 21
    assert d["hparams"]["feed_forward_length"] == 768 and d["hparams"]["head_count_kv"] == 4
    text = cli("inspect", path, "--tensors")
    assert f"format:            {label}" in text.out
    assert "layers.1.feed_forward.w2.weight  768x256  F16" in text.out


def test_options_and_several_files(samples, cli):
    r = cli("inspect", "--json", samples.gguf("f16"), samples.ggjt3("q4_0"))
    assert r.code == 0
    d = json.loads(r.out)
    assert [x["format"] for x in d] == ["GGUF", "GGJT"]
    kv = cli("inspect", "--kv", samples.gguf("f16")).out
    assert "general.architecture" in kv and "[512 items]" in kv


def test_chat_template_shown(samples, cli, tmp_path):
    # a GGUF with a chat template, written by gguf-py from the sample's own metadata
    from ggufkit.samples.model import SIZES, write_gguf

    path = tmp_path / "t.gguf"
    write_gguf(path, SIZES["tiny"], f16=True, chat_template="{{ messages[0]['content'] }}")
    r = cli("inspect", path, "--template")
    assert "present (28 chars)" in r.out and "{{ messages[0]['content'] }}" in r.out


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


@pytest.mark.parametrize("cut", [3, 8, 20, 600, 4000, -100])
def test_truncated_gguf(samples, cli, tmp_path, cut):
    data = samples.gguf("f16").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:cut])
    assert_clean_error(cli("inspect", bad), 2, str(bad))


@pytest.mark.parametrize("cut", [6, 30, 500, 5000, -100])
def test_truncated_legacy(samples, cli, tmp_path, cut):
    data = samples.ggjt3("f16").read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data[:cut])
    assert_clean_error(cli("inspect", bad), 2, str(bad))


def test_corrupt_inputs(samples, cli, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert_clean_error(cli("inspect", empty), 2, "too short")
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert_clean_error(cli("inspect", junk), 2, "unknown magic")
    assert_clean_error(cli("inspect", tmp_path / "missing.gguf"), 2, "No such file")
    assert_clean_error(cli("inspect", tmp_path), 2, "directory")
    data = bytearray(samples.gguf("f16").read_bytes())
    data[8:16] = (1 << 40).to_bytes(8, "little")  # tensor count
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(bytes(data))
    assert_clean_error(cli("inspect", huge), 2, "tensor count")


def test_one_bad_file_among_several(samples, cli, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF")
    r = cli("inspect", samples.gguf("f16"), bad)
    assert r.code == 2
    assert "format:" in r.out and str(bad) in r.err and "Traceback" not in r.err


def test_a_directory_lists_its_model_files_one_line_each(samples, cli, tmp_path):
    from ggufkit.samples.families import write_family_sample

    folder = tmp_path / "models"
    folder.mkdir()
    os.link(samples.gguf("q4_0"), folder / "a.gguf")
    os.link(samples.era("GGJT", 1, "q4_1"), folder / "b.bin")
    write_family_sample(folder / "c-gptj.bin", "gptj", "q4_0")
    (folder / "d-broken.bin").write_bytes(samples.ggjt3("q4_0").read_bytes()[:3000])
    (folder / "notes.txt").write_text("not a model: not listed")
    r = cli("inspect", folder)
    assert r.code == 2 and r.err == ""  # a model file that cannot be read is a line, and exit code 2
    assert [line.split()[:5] for line in r.out.splitlines()] == [
        ["file", "format", "family", "type", "size"], ["a.gguf", "GGUF", "v3", "llama", "Q4_0"],
        ["b.bin", "GGJT", "v1", "llama", "Q4_1"], ["c-gptj.bin", "GGML", "gptj", "Q4_0", "100.69"],
        ["d-broken.bin", "legacy", "-", "-", "2.93"]]
    lines = r.out.splitlines()
    assert lines[1].endswith("GGUF already") and lines[2].endswith("yes: to GGUF llama")
    assert lines[3].endswith("no: inspect only: current llama.cpp has no graph for GPT-J")
    assert "error: vocabulary size is 512, more than" in lines[4]
    r = cli("inspect", folder, "--json")
    listed = {os.path.basename(m["path"]): m for m in json.loads(r.out)}
    assert (listed["b.bin"]["converts"], listed["c-gptj.bin"]["converts"], listed["a.gguf"]["converts"]) == (
        True, False, None)
    assert listed["c-gptj.bin"]["convert"].endswith("so no GGUF of it would load")  # the whole reason
    assert listed["d-broken.bin"]["error"] and listed["b.bin"]["parameters"] > 0
    os.remove(folder / "d-broken.bin")
    assert cli("inspect", folder).code == 0
