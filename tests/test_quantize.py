"""`ggufkit quantize` end to end: real llama.cpp quantization of the tiny sample, outputs checked by reading them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType as T, Keys, LlamaFileType

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.imatrix.files import read_matrix, write_gguf
from ggufkit.imatrix.matrix import Entry, Matrix, normalised
from ggufkit.samples.imatrix import write_synthetic_imatrix
from ggufkit.quantize.quant_types import QUANT_TYPES, quant_type
from tests.conftest import assert_clean_error, run_cli

NO_IMATRIX = [q for q in QUANT_TYPES if not q.needs_imatrix]

# Loads each model with llama-cpp-python and greedily generates a few tokens; one process for many files.
_GENERATE = r"""
import json, sys
from llama_cpp import Llama
out = {}
for path in sys.argv[1:]:
    llm = Llama(model_path=path, n_ctx=64, n_threads=2, verbose=False, seed=0)
    r = llm.create_completion("hello the", max_tokens=4, temperature=0.0)
    out[path] = r["usage"]["completion_tokens"]
    llm.close()
print(json.dumps(out))
"""


def generate_tokens(paths: list[Path]) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", _GENERATE, *map(str, paths)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def f32(samples) -> Path:
    return samples.gguf("f32")


@pytest.fixture(scope="module")
def all_types(f32, tmp_path_factory):
    """Every type that needs no imatrix, in one call (several targets, --out-dir naming)."""
    out = tmp_path_factory.mktemp("all")
    args = [a for q in NO_IMATRIX for a in ("-t", q.name.lower())]
    r = run_cli("quantize", f32, *args, "--out-dir", out, "--json", "--threads", "2")
    return out, r


def test_every_type_without_imatrix_is_written_and_named(all_types, f32):
    out, r = all_types
    assert r.code == 0, r.err
    assert r.err == ""  # not a terminal: no progress bar, no notices
    reports = json.loads(r.out)
    assert [x["type"] for x in reports] == [q.name for q in NO_IMATRIX]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"tiny-{q.name}.gguf" for q in NO_IMATRIX)
    for x in reports:
        assert x["outputs"] == [str(out / f"tiny-{x['type']}.gguf")]  # tiny-f32.gguf's type replaced
        assert x["output_bytes"] == Path(x["outputs"][0]).stat().st_size
        assert x["input_bytes"] == f32.stat().st_size
        assert sum(x["tensor_types"].values()) == len(read_gguf(f32).tensors)


@pytest.mark.parametrize("qtype", NO_IMATRIX, ids=lambda q: q.name)
def test_output_has_the_type_shapes_and_sizes(all_types, f32, qtype):
    src = read_gguf(f32)
    m = read_gguf(all_types[0] / f"tiny-{qtype.name}.gguf")
    expected_ftype = LlamaFileType.ALL_F32 if qtype.only_copy else qtype.ftype  # COPY keeps the input's
    assert m.kv[Keys.General.FILE_TYPE] == expected_ftype
    assert {t.name: t.shape for t in m.tensors} == {t.name: t.shape for t in src.tensors}
    types = {t.name: T(t.ggml_type) for t in m.tensors}
    assert all(types[n] == T.F32 for n in types if n.endswith("norm.weight"))  # 1-D tensors are never quantized
    main = T.Q8_0 if qtype.name == "MXFP4_MOE" else qtype.main_type  # MXFP4 only for MoE experts
    assert types["blk.0.attn_q.weight"] == main
    end = max(t.offset + t.nbytes for t in m.tensors)
    assert m.file_size - m.alignment < end <= m.file_size  # the data is all there, nothing after it


def test_every_output_loads_and_generates(all_types, f32):
    files = sorted(all_types[0].iterdir())
    tokens = generate_tokens(files)
    assert tokens == {str(p): 4 for p in files}


def test_imatrix_types_fail_early_without_one(f32, tmp_path, cli):
    r = cli("quantize", f32, "-t", "IQ2_XXS", "-o", tmp_path / "x.gguf")
    assert_clean_error(r, 2, "IQ2_XXS needs an importance matrix", "--imatrix")
    assert list(tmp_path.iterdir()) == []


def _imatrix_for(model: Path, path: Path) -> Path:
    """A synthetic importance matrix covering every 2-D weight of `model` (random positive sums, 3 chunks)."""
    return write_synthetic_imatrix(model, path, chunks=3)


def test_imatrix_quantization(f32, tmp_path, cli):
    im = _imatrix_for(f32, tmp_path / "imatrix.gguf")
    r = cli("quantize", f32, "-t", "iq2_xxs", "-t", "q2_k_s", "--imatrix", im, "--out-dir", tmp_path, "--json")
    assert r.code == 0, r.err
    iq2 = read_gguf(tmp_path / "tiny-IQ2_XXS.gguf")
    assert T(next(t for t in iq2.tensors if t.name == "blk.0.attn_q.weight").ggml_type) == T.IQ2_XXS
    assert iq2.kv["quantize.imatrix.file"] == str(im)
    assert iq2.kv["quantize.imatrix.dataset"] == "synthetic"
    assert iq2.kv["quantize.imatrix.entries_count"] == len([t for t in iq2.tensors if len(t.shape) == 2])
    assert iq2.kv["quantize.imatrix.chunks_count"] == 3
    assert generate_tokens([tmp_path / "tiny-IQ2_XXS.gguf"]) == {str(tmp_path / "tiny-IQ2_XXS.gguf"): 4}


def test_imatrix_legacy_format_reads_like_gguf(tmp_path):
    sums = np.array([2.0, 4.0, 6.0], dtype=np.float32)
    legacy = tmp_path / "imatrix.dat"
    name = b"blk.0.ffn_up.weight"
    legacy.write_bytes(np.array([1, len(name)], "<i4").tobytes() + name + np.array([2, 3], "<i4").tobytes()
                       + sums.tobytes() + np.array([5, 4], "<i4").tobytes() + b"wiki")
    old = read_matrix(legacy)
    write_gguf(tmp_path / "imatrix.gguf", Matrix(512, {"blk.0.ffn_up.weight": Entry(sums, np.array([2]))}, ["x"]))
    new = read_matrix(tmp_path / "imatrix.gguf")
    assert normalised(old)["blk.0.ffn_up.weight"].tolist() == normalised(new)["blk.0.ffn_up.weight"].tolist() == [1, 2, 3]
    assert (old.recorded_chunks, old.datasets) == (5, ["wiki"])


def test_bad_imatrix_is_refused_before_llama_cpp(f32, tmp_path, cli):
    bad = tmp_path / "imatrix.dat"
    bad.write_bytes(b"\x05\x00\x00\x00junk")
    r = cli("quantize", f32, "-t", "iq2_xxs", "--imatrix", bad, "-o", tmp_path / "x.gguf")
    assert_clean_error(r, 2, "imatrix.dat", "not an imatrix file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imatrix.dat"]


def test_options_reach_llama_cpp(f32, tmp_path, cli):
    out = tmp_path / "o.gguf"
    r = cli("quantize", f32, "-t", "q4_k_m", "-o", out, "--tensor-type", "attn_q=q8_0", "--tensor-type", "FFN_UP=q5_0",
            "--output-tensor-type", "f16", "--token-embedding-type", "q8_0",
            "--override-kv", "general.name=str:renamed", "--override-kv", "llama.context_length=int:99")
    assert r.code == 0, r.err
    m = read_gguf(out)
    types = {t.name: T(t.ggml_type) for t in m.tensors}
    assert types["blk.1.attn_q.weight"] == T.Q8_0
    assert types["blk.1.ffn_up.weight"] == T.Q5_0  # patterns are lower-cased, as llama-quantize does
    assert types["output.weight"] == T.F16
    assert types["token_embd.weight"] == T.Q8_0
    assert m.kv[Keys.General.NAME] == "renamed"
    assert m.arch_kv(Keys.LLM.CONTEXT_LENGTH) == 99


def test_pure_and_leave_output_tensor(f32, tmp_path, cli):
    r = cli("quantize", f32, "-t", "q4_k_m", "-o", tmp_path / "p.gguf", "--pure", "--leave-output-tensor")
    assert r.code == 0, r.err
    types = {t.name: T(t.ggml_type) for t in read_gguf(tmp_path / "p.gguf").tensors}
    assert types.pop("output.weight") == T.F32
    assert {t for n, t in types.items() if not n.endswith("norm.weight")} == {T.Q4_K}


def test_requantize_needs_the_flag(samples, tmp_path, cli):
    q8 = samples.gguf("q8_0")
    r = cli("quantize", q8, "-t", "q4_0", "-o", tmp_path / "x.gguf")
    assert_clean_error(r, 1, "requantizing from type", "--allow-requantize")
    assert list(tmp_path.iterdir()) == []
    r = cli("quantize", q8, "-t", "q4_0", "-o", tmp_path / "x.gguf", "--allow-requantize")
    assert r.code == 0, r.err
    assert read_gguf(tmp_path / "x.gguf").kv[Keys.General.FILE_TYPE] == LlamaFileType.MOSTLY_Q4_0


def test_ggjt3_input_is_converted_on_the_fly(samples, tmp_path, cli):
    r = cli("quantize", samples.ggjt3("f16"), "-t", "q4_k_m", "-t", "q8_0", "--out-dir", tmp_path, "--json")
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-f16.ggjt3-Q4_K_M.gguf", "tiny-f16.ggjt3-Q8_0.gguf"]
    direct = read_gguf(samples.gguf("f16"))
    for name, ftype in (("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M), ("Q8_0", LlamaFileType.MOSTLY_Q8_0)):
        m = read_gguf(tmp_path / f"tiny-f16.ggjt3-{name}.gguf")
        assert m.kv[Keys.General.FILE_TYPE] == ftype
        assert len(m.tensors) == len(direct.tensors)
    assert json.loads(r.out)[0]["input_bytes"] == samples.ggjt3("f16").stat().st_size


def test_dry_run_writes_nothing_and_predicts_the_result(f32, tmp_path, cli):
    r = cli("quantize", f32, "-t", "q4_k_m", "--out-dir", tmp_path, "--dry-run", "--json")
    assert r.code == 0, r.err
    assert list(tmp_path.iterdir()) == []
    dry = json.loads(r.out)
    real = json.loads(cli("quantize", f32, "-t", "q4_k_m", "--out-dir", tmp_path, "--json").out)
    assert dry["dry_run"] and dry["outputs"] == []
    assert dry["tensor_types"] == real["tensor_types"]
    assert dry["bits_per_weight"] == real["bits_per_weight"]
    assert abs(dry["output_bytes"] - real["output_bytes"]) < 4096  # only the header is estimated


def test_overwrite_refused_then_forced(f32, tmp_path, cli):
    out = tmp_path / "x.gguf"
    out.write_bytes(b"keep me")
    r = cli("quantize", f32, "-t", "q8_0", "-o", out)
    assert_clean_error(r, 2, "x.gguf", "--force")
    assert out.read_bytes() == b"keep me"
    assert cli("quantize", f32, "-t", "q8_0", "-o", out, "--force", "--quiet").code == 0
    assert read_gguf(out).kv[Keys.General.FILE_TYPE] == LlamaFileType.MOSTLY_Q8_0


def test_a_later_existing_target_stops_everything_first(f32, tmp_path, cli):
    (tmp_path / "tiny-Q8_0.gguf").write_bytes(b"x")
    r = cli("quantize", f32, "-t", "q4_0", "-t", "q8_0", "--out-dir", tmp_path)
    assert_clean_error(r, 2, "Q8_0.gguf", "exists")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-Q8_0.gguf"]


def test_keep_split_names_shards_like_llama_quantize(f32, tmp_path, cli):
    r = cli("quantize", f32, "-t", "q4_0", "-o", tmp_path / "m.gguf", "--keep-split")
    assert r.code == 0, r.err
    assert [p.name for p in tmp_path.iterdir()] == ["m-00001-of-00001.gguf"]


@pytest.mark.parametrize("content", [None, b"this is not a model\n" * 20, b"GGUF\x03\x00\x00\x00" + b"\xff" * 40])
def test_bad_input_one_line_no_leftovers(f32, tmp_path, cli, content):
    src = tmp_path / "in.gguf"
    src.write_bytes(f32.read_bytes()[:3000] if content is None else content)
    out = tmp_path / "out"
    out.mkdir()
    r = cli("quantize", src, "-t", "q4_k_m", "-o", out / "x.gguf")
    assert_clean_error(r, 2, "in.gguf")
    assert list(out.iterdir()) == []


def test_model_llama_cpp_refuses_leaves_nothing(tmp_path, cli):
    import gguf

    src = tmp_path / "alien.gguf"
    w = gguf.GGUFWriter(str(src), "no-such-arch")
    w.add_tensor("blk.0.attn_q.weight", np.ones((256, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out"
    out.mkdir()
    r = cli("quantize", src, "-t", "q4_0", "-o", out / "x.gguf")
    assert_clean_error(r, 1, "alien.gguf", "llama.cpp", "no-such-arch")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("args, fragments", [
    (["-t", "q4_km"], ["unknown quantization type 'q4_km'", "q4_k_m"]),
    (["-t", "q4_0", "--tensor-type", "attn_q"], ["PATTERN=TYPE"]),
    (["-t", "q4_0", "--tensor-type", "attn_q=q9_9"], ["unknown tensor type 'q9_9'"]),
    (["-t", "q4_0", "--output-tensor-type", "q8_1"], ["cannot quantize tensors to 'q8_1'"]),
    (["-t", "q4_0", "--override-kv", "general.name=text:x"], ["KEY=TYPE:VALUE"]),
    (["-t", "q4_0", "--override-kv", "a.b=int:x"], ["not a valid int"]),
    (["-t", "q4_0", "-t", "q8_0", "-o", "x.gguf"], ["--out-dir"]),
    ([], ["no target type"]),
])
def test_usage_errors(f32, tmp_path, cli, args, fragments):
    r = cli("quantize", f32, *[str(tmp_path / a) if a == "x.gguf" else a for a in args])
    assert_clean_error(r, 2, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_list(cli):
    r = cli("quantize", "--list")
    assert r.code == 0
    rows = {line.split()[0]: line for line in r.out.splitlines()[1:] if line.strip()}
    assert "q4_k_m" in rows and "4.50" in rows["q4_k_m"]
    # a bpw in a description is the main type's (the column), unless it says it is a mix's overall figure
    import re

    for q in QUANT_TYPES:
        said = re.search(r"([\d.]+) bpw", q.description)
        if said and "overall" not in q.description:
            assert float(said.group(1)) == pytest.approx(q.bits_per_weight, abs=0.01), q.name
    assert rows["iq2_s"].split()[1:3] == ["iq2_xs", "2.31"] and "~2.5 bpw overall" in rows["iq2_s"]
    assert "yes" in rows["iq2_xxs"] and "yes" not in rows["iq4_xs"]
    table = json.loads(cli("quantize", "--list", "--json").out)
    assert {t["name"] for t in table} == {q.name for q in QUANT_TYPES}
    assert quant_type("Q4_K").name == "Q4_K_M"


def test_text_report_and_progress_bar_on_a_terminal(f32, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "ggufkit", "quantize", str(f32), "-t", "q4_0", "-o",
                                           str(tmp_path / "x.gguf")], encoding="utf-8", timeout=60,
                          dimensions=(24, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "21/21" in child.before  # the bar reached the last tensor
    assert "Q4_0" in child.before and "x.gguf" in child.before and "bpw" in child.before


def test_an_abort_inside_llama_cpp_is_one_error_and_leaves_nothing(f32, tmp_path):
    """llama.cpp has no Q8_1 quantizer: GGML_ASSERT aborts the child mid-file (the CLI refuses q8_1 earlier)."""
    from ggufkit.errors import LlamaFailure
    from ggufkit.quantize.quantizer import quantize_file
    from ggufkit.quantize.options import QuantizeOptions

    with pytest.raises(LlamaFailure, match="SIGABRT.*GGML_ASSERT"):
        quantize_file(f32, tmp_path / "x.gguf", quant_type("q4_0"), QuantizeOptions(output_tensor_type=int(T.Q8_1)))
    assert list(tmp_path.iterdir()) == []
