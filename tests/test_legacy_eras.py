"""Every pre-GGUF LLaMA container version x file type converts to GGUF that current llama.cpp loads,
with the values the old file held (repacks dequantized independently of the repacker)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.formats.legacy import read_legacy
from tests.conftest import ERA_CASES, assert_clean_error

# Old block layouts written out from the format history (llama.cpp ggml.c at each era), as numpy record
# types: deliberately not the converter's own code (formats/legacy/blocks.py), so a repacker bug shows.
OLD = {
    (0, 2): [("d", "<f4"), ("qs", "u1", 16)], (0, 3): [("d", "<f4"), ("m", "<f4"), ("qs", "u1", 16)],
    (0, 4): [("d", "<f2"), ("qs", "u1", 8)], (0, 5): [("d", "<f2"), ("m", "<f2"), ("qs", "u1", 8)],
    (0, 6): [("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)], (0, 7): [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)],
    (0, 8): [("d", "<f4"), ("qs", "i1", 32)],
    (1, 2): [("d", "<f4"), ("qs", "u1", 16)], (1, 3): [("d", "<f4"), ("m", "<f4"), ("qs", "u1", 16)],
    (1, 6): [("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)], (1, 7): [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)],
    (1, 8): [("d", "<f4"), ("qs", "i1", 32)],
}


def old_dequantize(data: bytes, qversion: int, ggml_type: int) -> np.ndarray:
    """Values of an old-layout tensor, block by block, straight from the ggml.c of its era."""
    if ggml_type == T.F32:
        return np.frombuffer(data, "<f4")
    if ggml_type == T.F16:
        return np.frombuffer(data, "<f2").astype(np.float32)
    b = np.frombuffer(data, np.dtype(OLD[qversion, ggml_type]))
    out = []
    for blk in b:
        if ggml_type == T.Q8_0:
            out.append(blk["qs"].astype(np.float64) * blk["d"])
            continue
        qs = [int(x) for x in blk["qs"]]
        n = 2 * len(qs)
        if qversion == 0:  # byte i: x[2i] low nibble, x[2i+1] high nibble
            q = [v for x in qs for v in (x & 15, x >> 4)]
        else:  # byte j: x[j] low nibble, x[j + n/2] high nibble
            q = [x & 15 for x in qs] + [x >> 4 for x in qs]
        if "qh" in blk.dtype.names:
            q = [v | (((int(blk["qh"]) >> j) & 1) << 4) for j, v in enumerate(q)]
        d = float(blk["d"])
        if "m" in blk.dtype.names:
            out.append(np.array([v * d + float(blk["m"]) for v in q]))
        else:
            offset = 16 if "qh" in blk.dtype.names else 8
            out.append(np.array([(v - offset) * d for v in q]))
        assert len(out[-1]) == n
    return np.concatenate(out)


def _values(path, t) -> bytes:
    with open(path, "rb") as f:
        f.seek(t.offset)
        return f.read(t.nbytes)


@pytest.mark.parametrize("container,version,type_name", ERA_CASES)
def test_every_era_and_type_converts(samples, cli, tmp_path, container, version, type_name):
    import llama_cpp

    src = samples.era(container, version, type_name)
    out = tmp_path / "out.gguf"
    r = cli("convert", src, "-o", out, "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    m, g = read_legacy(src), read_gguf(out)
    assert len(g.tensors) == len(m.tensors) == 21
    by_name = {t.name: t for t in g.tensors}
    names = m.family.geometry(m, {}).names
    loss = report["conversion"]["loss"]
    for t in m.tensors:
        o = by_name[names[t.name]]
        assert o.shape == t.shape
        old = old_dequantize(_values(src, t), m.qversion, t.ggml_type)
        new = dequantize(np.frombuffer(_values(out, o), np.uint8), T(o.ggml_type)).ravel()
        if loss == "exact" or t.ggml_type in (T.F32, T.F16):
            assert np.array_equal(old.astype(np.float32), new), t.name  # a pure permutation: identical values
        elif loss == "scales rounded to f16":
            # w = q*d (+ m): rounding d and m to f16 moves w by at most 2^-11 (|q*d| + |m|)
            blk = old.reshape(-1, 32)
            bound = (np.abs(blk).max(axis=1) + np.ptp(blk, axis=1))[:, None] * 2.0 ** -11 * 1.01
            assert (np.abs(old - new).reshape(-1, 32) <= bound + 1e-12).all(), t.name
        else:  # Q4_2/Q4_3 requantized to Q4_0/Q4_1: within one 4-bit step of the original block
            step = np.abs(old).reshape(-1, 32).max(axis=1, keepdims=True) / 7
            assert (np.abs(old - new).reshape(-1, 32) <= step).all(), t.name
    want = {"q4_2": "Q4_0", "q4_3": "Q4_1"}.get(type_name, type_name.upper())
    assert report["file_type"] == want
    assert report["conversion"]["source"] == (container if version is None else f"{container} v{version}")
    llm = llama_cpp.Llama(str(out), n_ctx=64, n_threads=2, verbose=False)
    assert len(llm.tokenize(b"hello the world", add_bos=False)) == 3
    del llm


@pytest.mark.parametrize("container,version", [("GGML", None), ("GGMF", 1), ("GGJT", 1), ("GGJT", 2)])
@pytest.mark.parametrize("type_name", ["f32", "f16"])
def test_unquantized_eras_generate_as_the_source(samples, cli, tmp_path, container, version, type_name):
    from tests.test_convert import _greedy

    out = tmp_path / "out.gguf"
    assert cli("convert", samples.era(container, version, type_name), "-o", out, "--eps", "1e-5").code == 0
    source = samples.gguf("f32") if type_name == "f32" else samples.gguf("f16")
    assert _greedy(out) == _greedy(source)


def test_summary_and_verify_say_what_happened(samples, cli, tmp_path):
    r = cli("convert", samples.era("GGJT", 1, "q4_0"), "-o", tmp_path / "a.gguf", "--verify")
    assert r.code == 0, r.err
    assert "from GGJT v1: tensors 5 copied, 16 repacked; scales rounded to f16, largest weight change" in r.out
    assert "verified 21 tensors: 5 byte-identical, 16 compared as values" in r.out
    r = cli("convert", samples.era("GGJT", 1, "q4_3"), "-o", tmp_path / "b.gguf", "--requantize-to", "q8_0", "--json")
    d = json.loads(r.out)
    assert d["file_type"] == "Q8_0" and d["conversion"]["requantized_types"] == ["Q4_3->Q8_0"]
    g = read_gguf(tmp_path / "b.gguf")
    assert "requantized" in g.kv["ggufkit.conversion"]
    r = cli("convert", samples.era("GGML", None, "f16"), "-o", tmp_path / "c.gguf")
    assert "from GGML: tensors 21 copied; exact; token scores reconstructed from token order" in r.out
    assert_clean_error(cli("convert", samples.era("GGJT", 1, "q4_2"), "-o", tmp_path / "d.gguf",
                           "--requantize-to", "q2_k"), 2, "--requantize-to")


@pytest.mark.parametrize("container,version,type_name", [("GGML", None, "q4_0"), ("GGJT", 1, "f16"), ("GGJT", 2, "q8_0")])
def test_multi_part_joins(samples, cli, tmp_path, container, version, type_name):
    whole, parted = samples.era(container, version, type_name), samples.era(container, version, type_name, parts=2)
    assert (parted.parent / f"{parted.name}.1").exists()
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    assert cli("convert", whole, "-o", a).code == 0
    r = cli("convert", parted, "-o", b, "--verify")
    assert r.code == 0, r.err
    assert "2 parts joined" in r.out
    ga, gb = read_gguf(a), read_gguf(b)
    assert [(t.name, t.shape, t.ggml_type) for t in ga.tensors] == [(t.name, t.shape, t.ggml_type) for t in gb.tensors]
    for ta, tb in zip(ga.tensors, gb.tensors):
        assert _values(a, ta) == _values(b, tb), ta.name


def test_multi_part_faults(samples, cli, tmp_path):
    import shutil

    src = samples.era("GGJT", 1, "q4_0", parts=2)
    first, second = tmp_path / "m.bin", tmp_path / "m.bin.1"
    shutil.copy(src, first)
    out = tmp_path / "out.gguf"
    assert_clean_error(cli("convert", first, "-o", out), 2, "part 2 of 2 (m.bin.1) is missing")
    second.write_bytes(src.with_name(src.name + ".1").read_bytes()[:-100])
    assert_clean_error(cli("convert", first, "-o", out), 2, "m.bin.1", "truncated")
    other = samples.era("GGJT", 1, "q4_1", parts=2)
    shutil.copy(other.with_name(other.name + ".1"), second)
    assert_clean_error(cli("convert", first, "-o", out), 2, "m.bin.1", "not a part of the same model")
    (tmp_path / "m.bin.2").write_bytes(b"")
    shutil.copy(src.with_name(src.name + ".1"), second)
    assert_clean_error(cli("convert", first, "-o", out), 2, "parts of different models are mixed")
    assert not out.exists()


def test_batch_of_mixed_eras_skips_extra_parts(samples, cli, tmp_path):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for c, v, t in [("GGML", None, "q4_1"), ("GGJT", 1, "q4_2"), ("GGJT", 2, "q5_0")]:
        shutil.copy(samples.era(c, v, t), folder / f"{c.lower()}{v or ''}-{t}.bin")
    parted = samples.era("GGMF", 1, "q4_0", parts=2)
    shutil.copy(parted, folder / "big.bin")
    shutil.copy(parted.with_name(parted.name + ".1"), folder / "big.bin.1")
    outs = tmp_path / "out"
    outs.mkdir()
    r = cli("convert", folder, "--out-dir", outs, "--json", "-j", "2")
    assert r.code == 0, r.err
    items = json.loads(r.out)
    assert sorted(i["status"] for i in items) == ["converted"] * 4
    assert sorted(p.name for p in outs.iterdir()) == ["big.gguf", "ggjt1-q4_2.gguf", "ggjt2-q5_0.gguf", "ggml-q4_1.gguf"]


def test_inspect_and_run_accept_old_files(samples, cli, tmp_path, monkeypatch):
    # a cache of its own: the cache keys on content, so a byte-identical sample converted by an earlier
    # run in the user's cache would be reused silently (issue 17)
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    r = cli("inspect", "--json", samples.era("GGJT", 1, "q4_2"))
    d = json.loads(r.out)
    assert (d["format"], d["version"], d["family"], d["quantization_version"]) == ("GGJT", 1, "llama", 0)
    assert d["file_type"] == "Q4_2" and {t["type"] for t in d["tensors"]} == {"F32", "Q4_2"}
    r = cli("inspect", samples.era("GGML", None, "q4_0"))
    assert "GGML (llama family, quantization version 0)" in r.out
    r = cli("run", samples.era("GGJT", 1, "q4_0"), "-p", "hello the", "-n", "4", "--temp", "0")
    assert r.code == 0, r.err
    assert "legacy GGJT v1 file, converted once" in r.err


def test_a_foreign_part_of_the_same_shape_is_refused(samples, cli, tmp_path):
    """Issue 26 item 3: a second part from another model of the same shape (same type, hparams and vocabulary)
    would make a chimera; the parts of one model hold the same copy of every unsplit tensor (the norms)."""
    import shutil
    import struct

    from ggufkit.formats.legacy.ggml import read_container

    src = samples.era("GGJT", 1, "q4_0", parts=2)
    first, second = tmp_path / "m.bin", tmp_path / "m.bin.1"
    shutil.copy(src, first)
    data = bytearray((src.parent / f"{src.name}.1").read_bytes())
    norm = next(t for t in read_container(f"{src}.1").tensors if t.name == "layers.1.ffn_norm.weight")
    data[norm.offset + 8:norm.offset + 12] = struct.pack("<f", 0.75)  # the other model's norm: its own values
    second.write_bytes(data)
    out = tmp_path / "out.gguf"
    assert_clean_error(cli("convert", first, "-o", out), 2, f"{second}: not a part of the same model",
                       "layers.1.ffn_norm.weight differs from the first part's (m.bin)")
    assert not out.exists()


def test_sample_parts_and_naming_a_later_part(cli, tmp_path):
    """Issue 26 item 12: `sample --parts N` makes a multi-part model; naming a later part says which part it
    is and names the first, missing or not."""
    first = tmp_path / "m.bin"
    r = cli("sample", first, "--format", "ggmf", "-t", "q4_0", "--parts", "2")
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.bin.1"]
    d = json.loads(cli("inspect", first, "--json").out)
    assert "2 parts joined" in d["detection"] and d["parameters"] == 1_967_360  # the whole tiny model
    assert_clean_error(cli("convert", tmp_path / "m.bin.1", "-o", tmp_path / "o.gguf"), 2,
                       "m.bin.1: this is part 2 of a multi-part model, not its first: name the first part, m.bin")
    first.rename(tmp_path / "elsewhere.bin")
    assert_clean_error(cli("inspect", tmp_path / "m.bin.1"), 2, "name the first part, m.bin, which is missing")
