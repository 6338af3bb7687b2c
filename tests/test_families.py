"""The GGML-era families besides LLaMA: each converts to GGUF that llama.cpp loads and runs, generating
what the family's own program generated from the original file (recorded once from the genuine programs:
tests/fixtures/ggml_oracle_greedy.json); quantized tensors keep their values; the families llama.cpp
cannot run are refused with one line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.formats.legacy import read_legacy
from ggufkit.samples.families import write_family_sample
from tests.conftest import assert_clean_error, json_of

ORACLE = json.loads((Path(__file__).parent / "fixtures" / "ggml_oracle_greedy.json").read_text())
FAMILY_OF = {"gpt2": "gpt2", "cerebras": "gpt2", "starcoder": "starcoder", "gptneox": "gptneox", "dolly-v2": "gptneox",
             "mpt": "mpt", "falcon7": "falcon", "falcon40": "falcon"}
GREEDY = (
    "import sys, json, llama_cpp\n"
    "llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=2, verbose=False)\n"
    "toks = llm.tokenize(sys.argv[2].encode(), add_bos=False, special=False)\n"
    "out = []\n"
    "for t in llm.generate(toks, temp=0.0, top_k=1, repeat_penalty=1.0):\n"
    "    out.append(t)\n"
    "    if len(out) == int(sys.argv[3]): break\n"
    "print(json.dumps([toks, out]))\n"
)


@pytest.fixture(scope="module")
def fam_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


def sample(folder: Path, name: str, type_name: str) -> Path:
    path = folder / f"{name}-{type_name}.bin"
    if not path.exists():
        write_family_sample(path, name, type_name)
    return path


def greedy(path: Path, prompt: str, n: int = 8) -> tuple[list[int], list[int]]:
    r = subprocess.run([sys.executable, "-c", GREEDY, str(path), prompt, str(n)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    toks, out = json.loads(r.stdout)
    return toks, out


@pytest.mark.parametrize("run", ORACLE["runs"], ids=[f"{r['sample']}-{r['type']}" for r in ORACLE["runs"]])
def test_generates_what_the_original_program_generated(fam_dir, cli, run):
    src = sample(fam_dir, run["sample"], run["type"])
    # the fixture was recorded from exactly these bytes
    assert hashlib.sha256(src.read_bytes()).hexdigest() == run["sample_sha256"]
    out = fam_dir / f"{run['sample']}-{run['type']}.gguf"
    report = json_of(cli("convert", src, "-o", out, "--json", "--force"))
    assert report["conversion"]["family"] == FAMILY_OF[run["sample"]]
    assert read_gguf(out).architecture == FAMILY_OF[run["sample"]]
    prompt_ids, generated = greedy(out, ORACLE["prompt"])
    if run["prompt_ids"]:
        assert prompt_ids == run["prompt_ids"]
    # the program printed each generated token's text as the file stores it (U+FFFD for neox byte tokens)
    m = read_legacy(src)
    decode = m.family.bpe.decode
    assert b"".join(decode(m.vocab[t][0]) for t in generated) == bytes.fromhex(run["generated_hex"])


def _values(path: Path, t) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(t.offset)
        raw = np.frombuffer(f.read(t.nbytes), np.uint8)
    return dequantize(raw, T(t.ggml_type)).reshape(-1, t.shape[0])  # rows of ne0 values


@pytest.mark.parametrize("name", list(FAMILY_OF))
@pytest.mark.parametrize("type_name", ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"])
def test_quantized_values_survive_the_permutation(fam_dir, cli, name, type_name):
    src = sample(fam_dir, name, type_name)
    out = fam_dir / f"{name}-{type_name}.gguf"
    assert cli("convert", src, "-o", out, "--force", "-q").code == 0
    m, g = read_legacy(src), read_gguf(out)
    names = m.family.geometry(m, {"forced": True}).names
    by_name = {t.name: t for t in g.tensors}
    assert len(g.tensors) == len(m.tensors)
    hd = 64 // 4
    for t in m.tensors:
        o = by_name[names[t.name]]
        assert (o.shape, o.ggml_type) == (t.shape, t.ggml_type)
        old, new = _values(src, t), _values(out, o)
        if name in ("gptneox", "dolly-v2") and "query_key_value" in t.name:
            # Hugging Face's per-head rows [h: q k v] become llama.cpp's [Q | K | V], written out independently
            old = old.reshape(4, 3, hd, -1).transpose(1, 0, 2, 3).reshape(old.shape)
        assert np.array_equal(old, new), t.name
    if type_name == "q8_0":  # one quantized type per family through llama.cpp (the others are the same path)
        toks, out_ids = greedy(out, ORACLE["prompt"], 4)
        assert len(out_ids) == 4


@pytest.mark.parametrize("name,why", [("gptj", "no graph for GPT-J"), ("replit", "no replit architecture"),
                                      ("rwkv", "RWKV-6 and RWKV-7 only")])
def test_families_llama_cpp_cannot_run_are_refused_and_inspected(fam_dir, cli, name, why):
    src = sample(fam_dir, name, "q4_0")
    out = fam_dir / f"{name}.gguf"
    assert_clean_error(cli("convert", src, "-o", out), 2, "cannot convert", why)
    assert not out.exists()
    d = json_of(cli("inspect", src, "--json"))
    assert d["family"] == name and d["recognised"] and d["convert"].startswith("refused: ")
    assert d["memory"] is not None and len(d["tensors"]) > 10


@pytest.mark.parametrize("name,container,fam", [("gpt2", "GGML", "gpt2"), ("cerebras", "GGML", "gpt2"),
                                                ("starcoder", "GGML", "starcoder"), ("dolly-v2", "GGML", "gptneox"),
                                                ("mpt", "GGML", "mpt"), ("falcon40", "GGCC", "falcon")])
def test_inspect_names_family_container_and_hparams(fam_dir, cli, name, container, fam):
    d = json_of(cli("inspect", sample(fam_dir, name, "q5_1"), "--json"))
    assert (d["format"], d["family"], d["quantization_version"], d["file_type"]) == (container, fam, 2, "Q5_1")
    assert d["hparams"]["embedding_length"] == 64 and d["hparams"]["block_count"] == 2
    assert d["vocab_size"] == 512 and d["tokenizer"] == "gpt2 (byte-level BPE)"
    assert d["special_tokens"]["eos"]["text"] == "<|endoftext|>"


def test_arch_override_and_batch_over_mixed_families(fam_dir, cli, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("gpt2", "starcoder", "gptneox", "mpt", "falcon7", "gptj"):
        (folder / f"{name}.bin").write_bytes(sample(fam_dir, name, "f16").read_bytes())
    outs = tmp_path / "out"
    outs.mkdir()
    r = cli("convert", folder, "--out-dir", outs, "--json")
    items = {Path(i["input"]).stem: i for i in json.loads(r.out)}
    assert r.code == 0, r.err  # gptj is skipped (inspect only), not failed; the rest convert
    assert {k for k, i in items.items() if i["status"] == "converted"} == {"gpt2", "starcoder", "gptneox", "mpt", "falcon7"}
    assert items["gptj"]["status"] == "skipped"
    assert items["gptj"]["message"].startswith("inspect only: current llama.cpp has no graph for GPT-J")
    # a StarCoder file read as GPT-2 on request: same tensors, GPT-2's tokenizer settings
    d = json_of(cli("convert", folder / "starcoder.bin", "-o", tmp_path / "s.gguf", "--arch", "gpt2", "--json"))
    assert d["conversion"]["family"] == "gpt2"
    assert_clean_error(cli("convert", folder / "mpt.bin", "-o", tmp_path / "m.gguf", "--arch", "gptneox"), 2)


def test_run_accepts_a_family_file_through_the_cache(fam_dir, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    r = cli("run", sample(fam_dir, "mpt", "q8_0"), "-p", "Hello world", "-n", "4", "--ctx", "64")
    assert r.code == 0, r.err
    assert "converted once" in r.err


def test_every_family_that_converts_verifies(fam_dir, samples, cli, tmp_path):
    """--verify compares GPT-NeoX/Dolly's QKV through the family's row permutation: F16 and a quantized type of
    each family, and LLaMA's repacked GGJT v1 blocks, in one batch."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in FAMILY_OF:
        for type_name in ("f16", "q5_1"):
            (folder / f"{name}-{type_name}.bin").symlink_to(sample(fam_dir, name, type_name))
    (folder / "llama-q4_0.ggjt1.bin").symlink_to(samples.era("GGJT", 1, "q4_0"))
    r = cli("convert", folder, "--out-dir", tmp_path / "out", "--verify", "--json")
    assert r.code == 0, r.out[-3000:] + r.err
    items = {Path(i["input"]).name: i for i in json.loads(r.out)}
    assert len(items) == 2 * len(FAMILY_OF) + 1
    for name, i in items.items():
        v = i["verified"]
        assert i["status"] == "converted" and v["tensors"] == i["tensors"], name
        assert v["rows_permuted"] == (4 if name.startswith(("gptneox", "dolly")) else 0), name
        # families without grouped-query attention: llama.cpp's head_count_kv is head_count (it was None)
        assert i["metadata"]["head_count_kv"] == {"falcon7": 1, "falcon40": 2}.get(name.split("-")[0], 4), name
    assert items["llama-q4_0.ggjt1.bin"]["verified"]["compared_as_values"] > 0


def test_a_failed_check_is_a_failure_about_the_input(fam_dir, tmp_path):
    """What --verify says when the output differs: exit 1 (not bad input), naming the input, not the
    temporary file, which is gone. Shown by checking a real output against the plan without its permutation."""
    from dataclasses import replace

    from ggufkit.converters.engine import convert_legacy, open_convertible, plan
    from ggufkit.converters.verify import verify
    from ggufkit.errors import GgufkitError

    src = sample(fam_dir, "gptneox", "q8_0")
    out = tmp_path / "neox.gguf"
    convert_legacy(src, out)
    m, geo = open_convertible(src)
    plans = plan(m, geo)
    assert verify(m, plans, out)["rows_permuted"] == 4
    with pytest.raises(GgufkitError) as e:
        verify(m, [replace(p, rows=None) for p in plans], out)
    assert (e.value.exit_code, e.value.path) == (1, str(src))
    assert e.value.message == ("verification failed: tensor 'blk.0.attn_qkv.weight' bytes differ from the input's; "
                               "the output was not written")


@pytest.mark.parametrize("arch,what", [("mpt", "the header is"), ("llama", "the tensors are")])
def test_a_wrong_arch_names_the_family_the_file_reads_as(fam_dir, cli, tmp_path, arch, what):
    """Not the low-level error of reading a GPT-2 file with MPT's or LLaMA's layout ("token 1 claims
    22806528 bytes", "tensor #2 has 3416731535 dimensions")."""
    r = cli("convert", sample(fam_dir, "gpt2", "f16"), "-o", tmp_path / "x.gguf", "--arch", arch)
    assert_clean_error(r, 2, f"--arch {arch}: {what} not {arch}'s: it reads as gpt2's (GGML); leave out --arch, "
                             "or pass --arch gpt2")
    assert not (tmp_path / "x.gguf").exists()
