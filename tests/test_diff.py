"""`diff` end to end: exit codes as diff(1)'s, metadata and tensor differences, values against gguf-py's own
dequantization of whole tensors, legacy files as they convert."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize

from ggufkit.samples.make import make_sample
from tests.conftest import assert_clean_error


def diff_json(cli, *args) -> tuple[int, dict]:
    r = cli("diff", *args, "--json")
    assert r.code in (0, 1), r.err
    return r.code, json.loads(r.out)


def test_same_file_is_the_same_model(cli, samples):
    q8 = samples.gguf("q8_0")
    r = cli("diff", q8, q8)
    assert r.code == 0 and r.out.strip().endswith("same model, byte for byte"), r.out
    code, doc = diff_json(cli, q8, q8)
    assert code == 0 and doc["same"] and doc["tensors"]["same_bytes"] == doc["tensors"]["a"] > 0
    assert cli("diff", q8, q8, "-q").out == ""


def test_an_edited_copy(cli, samples, tmp_path):
    q8, out = samples.gguf("q8_0"), tmp_path / "e.gguf"
    assert cli("edit", q8, "-o", out, "--set", "general.name=Other", "--set", "my.key=7", "--remove",
               "general.file_type", "-q").code == 0
    code, doc = diff_json(cli, q8, out)
    assert code == 1 and not doc["same"]
    m = doc["metadata"]
    assert m["added"] == {"my.key": {"type": "int32", "value": 7}}
    assert list(m["removed"]) == ["general.file_type"]
    assert m["changed"]["general.name"]["b"] == "Other" and list(m["changed"]) == ["general.name"]
    t = doc["tensors"]
    assert t["same_bytes"] == t["a"] == t["b"] and not (t["added"] or t["removed"] or t["changed"] or t["different_bytes"])
    text = cli("diff", q8, out).out
    assert "+ my.key (int32): 7" in text and "- general.file_type (uint32)" in text and "'Other'" in text


def test_q4_1_against_q8_0_values_as_gguf_py_dequantizes_them(cli, samples):
    q4, q8 = samples.gguf("q4_1"), samples.gguf("q8_0")
    code, doc = diff_json(cli, q4, q8, "--values")
    assert code == 1
    t = doc["tensors"]
    ra, rb = gguf.GGUFReader(q4), gguf.GGUFReader(q8)
    retyped = {x.name for x, y in zip(ra.tensors, rb.tensors) if x.tensor_type != y.tensor_type}
    assert {c["name"] for c in t["changed"]} == retyped and t["different_bytes"] == []
    assert "Q4_1" in {c["type_a"] for c in t["changed"]} and {c["type_b"] for c in t["changed"]} == {"Q8_0"}
    values = {v["name"]: v for v in t["values"]}
    assert set(values) == {x.name for x in ra.tensors}
    for x, y in zip(ra.tensors, rb.tensors):  # whole tensors at once, as an independent reckoning
        d = dequantize(np.asarray(x.data), x.tensor_type).astype(np.float64) - dequantize(np.asarray(y.data), y.tensor_type)
        v = values[x.name]
        assert v["max_abs_diff"] == pytest.approx(float(np.max(np.abs(d))), rel=1e-9, abs=1e-12)
        assert v["rmse"] == pytest.approx(float(np.sqrt(np.mean(d * d))), rel=1e-6, abs=1e-12)
        assert (v["max_abs_diff"] > 0) == (x.name in retyped)
    text = cli("diff", q4, q8, "--values").out
    assert "Q4_1 [256, 256] -> Q8_0 [256, 256]" in text and "max |Δ|" in text


def test_another_vocabulary_first_difference_and_other_bytes(cli, samples, tmp_path):
    f16 = samples.gguf("f16")
    tokens = gguf.GGUFReader(f16).fields["tokenizer.ggml.tokens"].contents()
    changed = [*tokens[:300], "ggufkit-token", *tokens[301:]]
    edited = tmp_path / "vocab.gguf"
    assert cli("edit", f16, "-o", edited, "--set", f"tokenizer.ggml.tokens={json.dumps(changed)}", "-q").code == 0
    code, doc = diff_json(cli, f16, edited)
    assert code == 1
    d = doc["metadata"]["changed"]["tokenizer.ggml.tokens"]
    assert (d["length_a"], d["length_b"]) == (512, 512) and d["type_a"] == "array[string]"
    assert d["first_difference"] == {"index": 300, "a": tokens[300], "b": "ggufkit-token"}
    assert "512 -> 512 items, first difference at 300" in cli("diff", f16, edited).out
    other = make_sample(tmp_path / "seed1.gguf", "f16", seed=1)  # other random weights
    code, doc = diff_json(cli, f16, other)
    assert code == 1 and {"token_embd.weight", "output.weight"} <= set(doc["tensors"]["different_bytes"])


def test_a_legacy_file_as_it_converts(cli, samples):
    code, doc = diff_json(cli, samples.ggjt3("q8_0"), samples.gguf("q8_0"))
    t = doc["tensors"]  # the GGJT v3 file holds the GGUF sample's tensors: copied unchanged by conversion
    assert t["same_bytes"] == t["a"] == t["b"] > 0 and not t["different_bytes"]
    assert code == 1 and "general.name" in doc["metadata"]["changed"]  # named after the file it came from


def test_bad_input_is_exit_2(cli, samples, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    assert_clean_error(cli("diff", samples.gguf("q8_0"), junk), 2, str(junk))
    assert_clean_error(cli("diff", tmp_path / "none.gguf", samples.gguf("q8_0")), 2, "none.gguf")
