"""`ggufkit bench`: the matrix, every output format, the baseline gate, error rows, GPU advice, bad input.

Real llama.cpp on the tiny samples, with tiny workloads (-p 16 -n 8 -r 2): these tests check what is
measured and reported, never how fast (timing goals live in benchmarks/bench_bench.py).
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from ggufkit.bench.results import SCHEMA_VERSION
from ggufkit.bench.measure import Speed
from ggufkit.bench.options import BenchOptions, expand, parse_int_list
from ggufkit.bench.render import CSV_FIELDS
from ggufkit.errors import BadInputError
from tests.conftest import CPU_ONLY_BUILD, assert_clean_error

SMALL = ("-p", "16", "-n", "8", "-r", "2")
ROW_KEYS = {
    "model", "path", "architecture", "file_type", "size_bytes", "parameters", "backend", "gpu_layers", "mmap",
    "threads", "batch", "ctx", "n_prompt", "n_gen", "repetitions", "load_ms", "peak_rss_mib", "pp_tps", "pp_sd",
    "tg_tps", "tg_sd", "pp_samples_ns", "tg_samples_ns", "error", "rpc_servers",
}


@pytest.fixture(scope="module")
def q4(samples):
    return samples.gguf("q4_k_m")


@pytest.fixture(scope="module")
def q8(samples):
    return samples.gguf("q8_0")


@pytest.fixture(scope="module")
def broken(samples, tmp_path_factory):
    """Passes ggufkit's reader (same bytes, one tensor renamed) but llama.cpp misses output_norm.weight."""
    data = bytearray(samples.gguf("q4_k_m").read_bytes())
    old = b"output_norm.weight"
    at = data.index(old)
    data[at:at + len(old)] = b"output_nrm_.weight"
    path = tmp_path_factory.mktemp("broken") / "broken.gguf"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def matrix(q4, q8):
    from tests.conftest import run_cli

    r = run_cli("bench", q4, q8, *SMALL, "--mmap", "both", "-t", "1,2", "--gpu", "off", "--format", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _ok(row: dict, reps: int = 2) -> None:
    assert row["error"] is None
    assert row["load_ms"] > 0 and row["peak_rss_mib"] > 10
    for m in ("pp", "tg"):
        assert len(row[f"{m}_samples_ns"]) == reps and all(ns > 0 for ns in row[f"{m}_samples_ns"])
        tps = [row[f"n_{'prompt' if m == 'pp' else 'gen'}"] * 1e9 / ns for ns in row[f"{m}_samples_ns"]]
        assert row[f"{m}_tps"] == pytest.approx(sum(tps) / len(tps))  # mean of per-run speeds, as llama-bench
        assert row[f"{m}_sd"] >= 0


def test_matrix_has_one_row_per_combination(matrix, q4, q8):
    rows = matrix["rows"]
    assert len(rows) == 8
    combos = {(r["model"], r["mmap"], r["threads"]) for r in rows}
    assert combos == {(m.name, mm, t) for m in (q4, q8) for mm in (True, False) for t in (1, 2)}
    for r in rows:
        assert set(r) == ROW_KEYS
        _ok(r)
        assert r["architecture"] == "llama" and r["backend"] == "CPU" and r["gpu_layers"] == 0
        assert (r["n_prompt"], r["n_gen"], r["repetitions"], r["batch"], r["ctx"]) == (16, 8, 2, 512, 0)
    assert {r["file_type"] for r in rows} == {"Q4_K_M", "Q8_0"}
    assert {r["size_bytes"] for r in rows} == {q4.stat().st_size, q8.stat().st_size}


def test_json_document_schema(matrix):
    assert matrix["schema_version"] == SCHEMA_VERSION
    assert {"schema_version", "started", "seconds", "machine", "software", "settings", "rows"} <= set(matrix)
    assert set(matrix["machine"]) == {"cpu", "cores", "ram_bytes", "gpus"}
    assert matrix["machine"]["cores"] >= 1 and matrix["machine"]["ram_bytes"] > 0 and matrix["machine"]["cpu"]
    assert set(matrix["software"]) == {"os", "python", "ggufkit", "llama_cpp_python", "llama_cpp_system_info", "backends"}
    assert "CPU" in matrix["software"]["backends"]
    assert matrix["settings"]["threads"] == [1, 2] and matrix["settings"]["mmap"] == "both"
    assert "comparison" not in matrix


def test_csv_md_jsonl_agree_with_json(cli, q4, tmp_path):
    saved = tmp_path / "run.json"
    r = cli("bench", q4, *SMALL, "-t", "1", "--format", "csv", "-o", saved)
    assert r.code == 0, r.err
    doc = json.loads(saved.read_text())  # -o takes its format from the suffix
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert len(rows) == 1 and tuple(rows[0]) == CSV_FIELDS
    for k in CSV_FIELDS:
        want = doc["rows"][0][k]
        want = ",".join(want) if isinstance(want, list) else want  # rpc_servers
        assert rows[0][k] == ("" if want is None else str(want)), k

    md = cli("bench", q4, *SMALL, "-t", "1", "--format", "md", "-q")
    assert md.code == 0 and md.err == ""
    lines = md.out.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("| ") and ln.endswith(" |") for ln in lines)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert "pp16 t/s" in header and "tg8 t/s" in header and "peak RSS MiB" in header and "load ms" in header
    cells = dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert cells["model"] == q4.name and cells["mmap"] == "on" and " ± " in cells["pp16 t/s"]

    jl = cli("bench", q4, *SMALL, "-t", "1", "--format", "jsonl", "-q")
    assert jl.code == 0, jl.err
    objs = [json.loads(ln) for ln in jl.out.splitlines()]
    assert len(objs) == 1 and set(objs[0]) == ROW_KEYS
    _ok(objs[0])


def test_zero_skips_a_test(cli, q4):
    r = cli("bench", q4, "-p", "0", "-n", "8", "-r", "1", "-t", "1", "--format", "json", "-q")
    row = json.loads(r.out)["rows"][0]
    assert row["pp_tps"] is None and row["pp_samples_ns"] == [] and len(row["tg_samples_ns"]) == 1
    md = cli("bench", q4, "-p", "16", "-n", "0", "-r", "1", "-t", "1", "--format", "md", "-q")
    assert "pp16 t/s" in md.out and "tg" not in md.out.splitlines()[0]


def test_baseline_gate(cli, q4, tmp_path):
    base = tmp_path / "base.json"
    r = cli("bench", q4, *SMALL, "-t", "1", "--format", "json", "-o", base, "-q")
    assert r.code == 0, r.err
    equal = cli("bench", q4, *SMALL, "-t", "1", "--format", "json", "--baseline", base, "--max-regression", "95", "-q")
    assert equal.code == 0, equal.err
    assert "no regression beyond 95%" in equal.err and "REGRESSED" not in equal.err
    cmp = json.loads(equal.out)["comparison"]
    assert [c["metric"] for c in cmp["changes"]] == ["pp16", "tg8"] and not any(c["regressed"] for c in cmp["changes"])

    doc = json.loads(base.read_text())
    for row in doc["rows"]:
        row["pp_tps"] *= 100
        row["tg_tps"] *= 100
    faster = tmp_path / "faster.json"
    faster.write_text(json.dumps(doc))
    slow = cli("bench", q4, *SMALL, "-t", "1", "--format", "json", "--baseline", faster, "--max-regression", "10", "-q")
    assert slow.code == 3, slow.err
    assert slow.err.count("REGRESSED") == 2 and "pp16" in slow.err and "tg8" in slow.err
    assert len(re.findall(r" -9\d\.\d%  REGRESSED", slow.err)) == 2  # about 100x slower than the doctored baseline
    assert "2 figure(s) regressed by more than 10%" in slow.err
    assert json.loads(slow.out)["rows"][0]["error"] is None  # the results still reach stdout

    other = cli("bench", q4, *SMALL, "-t", "2", "--format", "json", "--baseline", faster, "-q")
    assert other.code == 0, other.err  # no matching row: reported, not failed
    assert "no baseline row for" in other.err and "t2" in other.err


def test_failing_child_becomes_error_row(cli, q4, broken):
    r = cli("bench", broken, q4, *SMALL, "-t", "1", "--format", "json", "-q")
    assert r.code == 1, r.err
    bad, good = json.loads(r.out)["rows"]
    assert bad["model"] == "broken.gguf" and "could not load the model" in bad["error"] and "'output_norm.weight' not found" in bad["error"]
    assert bad["pp_tps"] is None and bad["load_ms"] is None
    _ok(good)
    assert "1 of 2 configuration(s) failed" in r.err


@CPU_ONLY_BUILD
def test_gpu_on_cpu_only_build(cli, q4):
    r = cli("bench", q4, *SMALL, "--gpu", "on")
    assert_clean_error(r, 2, "--gpu on", "no GPU backend", "GGUFKIT_GPU=cuda make install")
    both = cli("bench", q4, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--gpu", "both", "--format", "json", "-q")
    assert both.code == 0, both.err
    assert both.err.count("\n") == 1 and "GPU rows skipped" in both.err and "GGUFKIT_GPU=cuda make install" in both.err
    assert [r["backend"] for r in json.loads(both.out)["rows"]] == ["CPU"]


def test_legacy_ggjt3_is_converted_and_benched(cli, samples, tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    legacy = samples.ggjt3("q4_0")
    r = cli("bench", legacy, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--format", "json")
    assert r.code == 0, r.err
    assert "legacy GGJT v3 file" in r.err
    row = json.loads(r.out)["rows"][0]
    assert row["model"] == legacy.name and row["file_type"] == "Q4_0" and row["error"] is None


@pytest.mark.parametrize("args, fragments", [
    (("-r", "0"), ("-r/--repetitions must be >= 1",)),
    (("-t", "0"), ("--threads", ">= 1")),
    (("-t", "1,x"), ("--threads", "comma-separated")),
    (("-b", ""), ("--batch",)),
    (("--mmap", "maybe"), ("--mmap must be one of",)),
    (("--format", "xml"), ("--format must be one of",)),
    (("-p", "0", "-n", "0"), ("nothing to measure",)),
    (("--ctx", "8"), ("--ctx 8 cannot hold",)),
    (("--gpu-layers", "0"), ("--gpu-layers",)),
])
def test_bad_flags(cli, q4, args, fragments):
    assert_clean_error(cli("bench", q4, *args), 2, *fragments)


def test_bad_model_files(cli, q4, tmp_path):
    assert_clean_error(cli("bench", tmp_path / "missing.gguf", "-q"), 2, "missing.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(q4.read_bytes()[:5000])
    assert_clean_error(cli("bench", truncated, "-q"), 2, "truncated.gguf")
    text = tmp_path / "notes.txt"
    text.write_text("not a model at all\n")
    assert_clean_error(cli("bench", text, "-q"), 2, "notes.txt")
    # bad input stops the run before any measurement, even next to a good model
    r = cli("bench", q4, truncated, "-q", "--format", "json")
    assert_clean_error(r, 2, "truncated.gguf")
    assert r.out == ""


def test_bad_baseline_and_output(cli, q4, tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"rows": 3}')
    assert_clean_error(cli("bench", q4, "--baseline", junk), 2, "junk.json", "schema_version")
    assert_clean_error(cli("bench", q4, "--baseline", tmp_path / "none.json"), 2, "baseline file not found")
    exists = tmp_path / "exists.json"
    exists.write_text("{}")
    assert_clean_error(cli("bench", q4, "-o", exists), 2, "output exists")


def test_speed_statistics_match_llama_bench():
    s = Speed(10, [1_000_000_000, 2_000_000_000])
    assert s.tps == [10.0, 5.0] and s.mean == 7.5
    assert s.sd == pytest.approx(3.5355339, rel=1e-6)  # sample standard deviation (n - 1), as llama-bench
    assert Speed(10, [1_000_000_000]).sd == 0.0


def test_options():
    assert parse_int_list("2, 1,2", "-t") == [2, 1]
    with pytest.raises(BadInputError):
        parse_int_list("1,-1", "-t")
    opts = BenchOptions(models=[], threads=[1, 2], batch=[256, 512], mmap="both", gpu="both")
    configs, notice = expand(opts, gpu_available=True)
    assert len(configs) == 0  # no models
    opts.models = ["a", "b"]
    configs, notice = expand(opts, gpu_available=True)
    assert len(configs) == 2 * 2 * 2 * 2 * 2 and notice is None
    assert {c.gpu_layers for c in configs} == {0, -1}
    configs, notice = expand(opts, gpu_available=False)
    assert len(configs) == 16 and {c.gpu_layers for c in configs} == {0} and "GGUFKIT_GPU=cuda" in notice


def test_rich_table_when_asked(cli, q4):
    r = cli("bench", q4, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--format", "table", "-q")
    assert r.code == 0 and r.err == "", r.err
    assert "llama-cpp-python" in r.out and "±" in r.out  # speeds never fold, even at 80 columns


@pytest.mark.parametrize("ctx, expected", [(0, (512, 256)), (1024, (1024, 1024))])
def test_context_per_test_as_llama_bench(q4, ctx, expected):
    """--ctx 0: pp and tg each get a context sized to their tokens (llama.cpp pads to 256), as llama-bench
    makes one per test; speed depends on it on a GPU. A given --ctx serves both."""
    from ggufkit.bench.child import work

    req = {"path": str(q4), "n_ctx": ctx, "threads": 2, "batch": 512, "gpu_layers": 0, "mmap": True,
           "n_prompt": 300, "n_gen": 8, "reps": 1}
    result = work(req, lambda event: None)
    assert (result["pp"]["n_ctx"], result["tg"]["n_ctx"]) == expected
    assert result["pp"]["tokens"] == 300 and result["tg"]["tokens"] == 8


def test_gpu_layers_takes_all_as_run_does(cli, q4):
    """`--gpu-layers all` (and -ngl) as `run -ngl all`; on a CPU-only build the GPU rows are skipped."""
    for value in ("all", "-1", "5"):
        r = cli("bench", q4, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--gpu", "both", "-ngl", value,
                "--format", "json", "-q")
        assert r.code == 0, (value, r.err)
        assert json.loads(r.out)["settings"]["gpu_layers"] == (5 if value == "5" else -1)
    bad = cli("bench", q4, "-p", "8", "-n", "4", "-r", "1", "--gpu-layers", "some")
    assert_clean_error(bad, 2, "--gpu-layers takes a number or 'all'")


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_table_fits_its_width_and_files_get_the_full_table(cli, q4, tmp_path, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    out = tmp_path / "full.md"
    r = cli("bench", q4, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--mmap", "both", "--format", "table", "-q",
            "-o", out)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert max(len(line) for line in lines) <= width
    assert not any(len(line.strip()) == 1 for line in lines)  # no header broken one letter per line
    assert "pp8" in r.out and "tg4" in r.out and "mmap" in r.out and q4.name in r.out
    assert out.read_text().splitlines()[0].startswith("| model | arch | type | size | params | backend | ngl |")
