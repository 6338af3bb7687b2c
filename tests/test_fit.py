"""`ggufkit fit`: candidates quantized, measured here, scored in one eval pass; the choice under budgets.

The tiny sample carries most checks (seconds); SmolLM2's F16 base carries what the issue measures on a
real model: KLD equal to `eval`'s on the kept files, memory within 15 % of a fresh `run`, a second call
with another budget in under a quarter of the first's time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CPU_ONLY_BUILD, NEEDS_GPU, assert_clean_error, json_of, run_cli

TEXT = ("hello the world of the model and the token of the file " * 40 + "llama model file token world " * 40)
TINY = ("--ctx", "128", "--chunks", "2", "-r", "1")
TYPES = ("-t", "q8_0", "-t", "q4_k_m", "-t", "q2_k")
KEYS = {"type", "file", "size_bytes", "peak_memory_bytes", "gpu_memory_bytes", "pp_tps", "tg_tps", "ppl", "mean_kld",
        "kld_p99", "same_top", "fits", "reason", "pareto"}


@pytest.fixture(scope="module")
def env(samples, tmp_path_factory):
    """A cache of the module's own; the tiny F16 sample fitted once over three types, its files kept."""
    root = tmp_path_factory.mktemp("fit")
    text = root / "text.txt"
    text.write_text(TEXT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GGUFKIT_CACHE", str(root / "cache"))
        mp.delenv("GGUFKIT_CACHE_MAX", raising=False)
        base = samples.gguf("f16")
        r = run_cli("fit", base, *TYPES, *TINY, "-f", text, "--keep", root / "kept", "--json", timeout=300)
        yield {"root": root, "text": text, "base": base, "first": json_of(r), "kept": root / "kept"}


def fit(env, *args, timeout: float = 300):
    return run_cli("fit", env["base"], *TYPES, *TINY, "-f", env["text"], *args, timeout=timeout)


def front(rows) -> set[str]:
    """The Pareto front recomputed from the figures: nothing else has memory and KLD both <=, one <."""
    return {r["type"] for r in rows if not any(
        o["memory_bytes"] <= r["memory_bytes"] and o["mean_kld"] <= r["mean_kld"]
        and (o["memory_bytes"], o["mean_kld"]) != (r["memory_bytes"], r["mean_kld"]) for o in rows)}


def test_every_candidate_measured_kept_and_chosen(env):
    d = env["first"]
    rows = d["candidates"]
    assert [r["type"] for r in rows] == ["Q8_0", "Q4_K_M", "Q2_K"]
    for r in rows:
        assert KEYS <= set(r), KEYS - set(r)
        assert r["file"] == str(env["kept"] / f"tiny-f16-{r['type']}.gguf")
        assert r["size_bytes"] == os.path.getsize(r["file"])
        assert r["peak_memory_bytes"] > r["size_bytes"] and r["gpu_memory_bytes"] is None
        assert r["pp_tps"] > 0 and r["tg_tps"] > 0 and r["ppl"] > 0 and 0 <= r["same_top"] <= 1
        assert r["mean_kld"] > 0 and r["kld_p99"] >= r["mean_kld"] * 0.5 and r["fits"] is True and not r["cached"]
    q8, q4, q2 = rows
    assert q8["mean_kld"] < q4["mean_kld"] < q2["mean_kld"] and q8["size_bytes"] > q4["size_bytes"] > q2["size_bytes"]
    assert d["choice"] == "Q8_0" and q8["reason"] == "lowest mean KLD (no budget given)"
    assert "loses more" in q2["reason"]
    assert {r["type"] for r in rows if r["pareto"]} == front(rows)
    assert d["command"] == f"ggufkit quantize {env['base']} -t q8_0"
    assert d["chunks"] == 2 and d["ctx"] == 128 and d["partial"] is False


def test_kld_equals_evals_on_the_kept_files(env, cli):
    rows = env["first"]["candidates"]
    e = json_of(cli("eval", env["base"], *(r["file"] for r in rows), "-f", env["text"], "--ctx", "128", "--chunks", "2",
                    "--json"))
    for r, m in zip(rows, e["models"][1:]):
        assert r["mean_kld"] == pytest.approx(m["vs_base"]["kld_mean"], rel=0.01)
        assert r["ppl"] == pytest.approx(m["ppl"], rel=0.01)


def test_a_budget_between_two_candidates_picks_the_lowest_kld_under_it(env):
    rows = sorted(env["first"]["candidates"], key=lambda r: r["memory_bytes"])
    budget = (rows[0]["memory_bytes"] + rows[1]["memory_bytes"]) // 2  # only the smallest fits
    r = fit(env, "--max-memory", str(budget), "--json")
    d = json_of(r)
    assert "quantize" not in r.err  # every figure read back: nothing quantized or measured again
    assert all(c["cached"] for c in d["candidates"] if not c["skipped"])
    under = [c for c in d["candidates"] if c["memory_bytes"] is not None and c["memory_bytes"] <= budget]
    assert d["choice"] == min(under, key=lambda c: c["mean_kld"])["type"] == rows[0]["type"]
    for c in d["candidates"]:
        if c["type"] != d["choice"]:
            assert c["fits"] is False and "over --max-memory" in c["reason"]
    assert {c["type"] for c in d["candidates"] if c["pareto"]} == front(d["candidates"])


def test_a_budget_below_every_candidate_exits_1_with_no_choice(env, tmp_path, monkeypatch):
    r = fit(env, "--max-memory", "100K", "--json")  # every candidate measured before: over by its memory
    assert r.code == 1
    d = json.loads(r.out)
    assert d["choice"] is None and d["command"] is None
    assert all(c["fits"] is False and "over --max-memory" in c["reason"] for c in d["candidates"])
    smallest = min(d["candidates"], key=lambda c: c["memory_bytes"])["type"]
    assert d["summary"].startswith(f"nothing meets the budgets; the closest, {smallest}, needs --max-memory ")
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))  # nothing measured: the files' sizes decide
    d = json.loads(fit(env, "--max-memory", "100K", "--json").out)
    assert all(c["skipped"] and c["fits"] is False and "skipped" in c["reason"] for c in d["candidates"])
    assert d["summary"].startswith("nothing meets the budgets; the smallest, Q2_K, needs --max-memory above")
    assert not (tmp_path / "cache" / "converted").exists()  # nothing quantized
    r = fit(env, "--max-kld", "1e-9", "--min-speed", "1e9")  # the table: every column in a pipe
    assert r.code == 1
    assert r.out.splitlines()[0].split() == ["type", "size", "memory", "pp", "t/s", "tg", "t/s", "PPL", "mean", "KLD",
                                             "99%", "KLD", "same", "top", "fits", "front"]
    assert "no choice: nothing meets the budgets; the closest," in r.out and "--min-speed" in r.out
    assert "under --min-speed 1e+09" in r.out and "over --max-kld 1e-09" in r.out


@CPU_ONLY_BUILD
def test_gpu_layers_on_a_cpu_build_say_so(env):
    r = fit(env, "-ngl", "all", "--json")
    d = json_of(r)
    assert "-ngl ignored, measuring on the CPU" in r.err
    assert d["gpu_layers"] == 0 and all(c["gpu_memory_bytes"] is None and c["cached"] for c in d["candidates"])


def test_formats_and_plot(env, tmp_path):
    r = fit(env, "--format", "md", "--plot", tmp_path / "fit.png")
    assert r.code == 0, r.err
    assert r.out.startswith("| type | size | memory | pp t/s |") and "make it: ggufkit quantize" in r.out
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = fit(env, "--format", "csv", "--max-memory", "1G", "--plot", tmp_path / "fit.svg")
    lines = r.out.splitlines()
    assert lines[0].startswith("type,file,size_bytes,predicted_size_bytes,peak_memory_bytes") and len(lines) == 4
    assert "<svg" in (tmp_path / "fit.svg").read_text()


def test_ctrl_c_keeps_what_was_measured(samples, tmp_path):
    env = {**os.environ, "GGUFKIT_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "ggufkit", "fit", samples.gguf("f16"), *TYPES, *TINY, "-f", tmp_path / "t.txt"]
    (tmp_path / "t.txt").write_text(TEXT)
    # SIGINT's default action in the child even where this suite runs with it ignored (`cmd &` in a script):
    # Python only turns SIGINT into KeyboardInterrupt when it is not ignored at start-up
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:  # one line per step on a pipe
        if line.startswith("fit: measure Q4_K_M"):  # Q8_0 measured
            proc.send_signal(signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "PARTIAL: interrupted" in out and "not measured (interrupted)" in out
    q8 = next(line for line in out.splitlines() if line.startswith("Q8_0 "))
    assert " MiB " in q8  # its memory
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "fit: measure Q8_0" not in r.stderr and "fit: measure Q4_K_M" in r.stderr  # Q8_0's figures were kept


def test_legacy_input_converted_once(samples, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    d = json_of(cli("fit", samples.ggjt3("f16"), "-t", "q8_0", "--ctx", "128", "--chunks", "1", "-r", "1", "--json"))
    (row,) = d["candidates"]
    assert d["choice"] == "Q8_0" and 0 < row["mean_kld"] < 1e-3
    assert row["file"].startswith(str(tmp_path / "cache" / "converted"))


def test_iq2_types_with_an_importance_matrix(samples, tmp_path, cli, monkeypatch):
    from ggufkit.fit.candidates import LADDER, WITH_MATRIX, ladder
    from tests.test_quantize import _imatrix_for

    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    assert [q.name for q in ladder([], True)] == [*LADDER, *WITH_MATRIX]
    assert [q.name for q in ladder([], False)] == list(LADDER)
    base = samples.gguf("f16")
    assert_clean_error(cli("fit", base, "-t", "iq2_xxs"), 2, "IQ2_XXS needs an importance matrix", "--imatrix")
    im = _imatrix_for(base, tmp_path / "imatrix.gguf")
    d = json_of(cli("fit", base, "-t", "iq2_xxs", "--imatrix", im, "--ctx", "128", "--chunks", "1", "-r", "1",
                    "--json"))
    assert d["choice"] == "IQ2_XXS" and d["imatrix"] == str(im) and d["command"].endswith(f"--imatrix {im}")


def test_imatrix_text_makes_the_matrix(samples, tmp_path, cli, monkeypatch):
    imatrix = pytest.importorskip("ggufkit.imatrix", reason="`ggufkit imatrix` (issue 22) is not merged yet")
    if not hasattr(imatrix, "matrix_for"):
        pytest.skip("ggufkit.imatrix has no matrix_for yet")
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    d = json_of(cli("fit", samples.gguf("f16"), "-t", "iq2_xxs", "--imatrix-text", text, "-f", text, "--ctx", "128",
                    "--chunks", "1", "-r", "1", "--json"))
    assert d["choice"] == "IQ2_XXS" and d["imatrix"] and os.path.exists(d["imatrix"])


def test_terminal_table_fits_80_columns():
    from ggufkit.cli.output import table
    from ggufkit.fit import report
    from ggufkit.fit.result import Budgets, FitResult, Row

    rows = [Row("IQ2_XXS", size_bytes=123456789, peak_memory_bytes=2**31, gpu_memory_bytes=2**30, pp_tps=1234.5,
                tg_tps=123.4, ppl=12.3456, mean_kld=0.123456, kld_p99=1.23456, same_top=0.8765, fits=True, pareto=True)]
    result = FitResult("m.gguf", "t", 512, 3, Budgets(), None, -1, None, rows, choice="IQ2_XXS")
    header, cells = report.narrow(*report.cells(result), 80)
    assert max(len(line) for line in table(cells, header).splitlines()) <= 80
    assert {"type", "memory", "GPU", "tg t/s", "mean KLD", "fits"} <= set(header) and "99% KLD" not in header


@pytest.mark.parametrize("args, code, fragments", [
    (("--max-memory", "lots"), 2, ("--max-memory: 'lots' is not a size",)),
    (("--ctx", "15"), 2, ("--ctx must be an even number",)),
    (("--imatrix", "m.gguf", "--imatrix-text", "default"), 2, ("not both",)),
    (("-t", "copy"), 2, ("COPY only copies the tensors",)),
    (("-t", "q4km"), 2, ("unknown quantization type 'q4km'",)),
    (("--plot", "x.jpg"), 2, (".png or .svg",)),
    (("--chunks", "0"), 2, ("--chunks must be >= 1",)),
    (("-t", "q8_0", "--imatrix", "nope.gguf"), 2, ("nope.gguf: cannot open",)),
])
def test_bad_usage_is_one_line(samples, cli, args, code, fragments):
    assert_clean_error(cli("fit", samples.gguf("f16"), *args), code, *fragments)


def test_missing_source_short_text_damaged_store(samples, tmp_path, cli, monkeypatch):
    from ggufkit.fit import store

    assert_clean_error(cli("fit", tmp_path / "missing.gguf"), 2, "missing.gguf")
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    short = tmp_path / "short.txt"
    short.write_text("hello the world")
    r = cli("fit", samples.gguf("f16"), "-t", "q8_0", "--ctx", "128", "-f", short)
    assert_clean_error(r, 2, "needs at least 256 (two chunks)")
    assert not (tmp_path / "cache" / "converted").exists()  # refused before quantizing anything
    store.put("speed", "k", {"tg_tps": 1.0})
    assert store.get("speed", "k") == {"tg_tps": 1.0}
    (store.store_dir() / "speed-k.json").write_text('{"tg_tps": 1.')  # cut short: measured again, not an error
    assert store.get("speed", "k") is None


# ---- SmolLM2's F16 base: the issue's own checks ------------------------------------------------------

def run_peak(cmd: list[str]) -> int:
    """The peak RSS of `cmd`, started by a small Python of its own: Linux carries the spawning process's
    high-water mark into a child's figure (tests/measure.py), and this suite's process grows past 300 MB."""
    helper = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
              "_, status, usage = os.wait4(p.pid, 0); print(usage.ru_maxrss * 1024); "
              "sys.exit(os.waitstatus_to_exitcode(status))")
    r = subprocess.run([sys.executable, "-c", helper, *cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1])


REAL_TYPES = ("-t", "q8_0", "-t", "q6_k", "-t", "q4_k_m", "-t", "q3_k_m", "-t", "q2_k")
REAL = ("--ctx", "512", "--chunks", "3", "-r", "1")


def test_smollm2_five_types(tmp_path, cli, monkeypatch):
    from ggufkit.models import model_path

    f16 = model_path("smollm2", f16=True)
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    t0 = time.perf_counter()
    first = json_of(cli("fit", f16, *REAL_TYPES, *REAL, "--keep", tmp_path, "--json", timeout=900))
    first_s = time.perf_counter() - t0
    rows = first["candidates"]
    ends = (rows[0], rows[-1])  # Q8_0 and Q2_K (the tiny sample's test checks every candidate): eval's figures
    e = json_of(cli("eval", f16, *(r["file"] for r in ends), "--ctx", "512", "--chunks", "3", "--json", timeout=600))
    for r, m in zip(ends, e["models"][1:]):
        assert r["mean_kld"] == pytest.approx(m["vs_base"]["kld_mean"], rel=0.01), r["type"]
    for r in (rows[0], rows[2]):  # Q8_0, Q4_K_M: a fresh `run` at the same context
        run = run_peak([sys.executable, "-m", "ggufkit", "run", r["file"], "--ctx", "512", "-p", "The capital of",
                        "-n", "16"])
        assert r["peak_memory_bytes"] == pytest.approx(run, rel=0.15), r["type"]
    assert {r["type"] for r in rows if r["pareto"]} == front(rows)
    by_memory = sorted(rows, key=lambda r: r["memory_bytes"])
    budget = (by_memory[1]["memory_bytes"] + by_memory[2]["memory_bytes"]) // 2
    t0 = time.perf_counter()
    second = json_of(cli("fit", f16, *REAL_TYPES, *REAL, "--max-memory", str(budget), "--json"))
    assert time.perf_counter() - t0 < first_s / 4
    under = [r for r in rows if r["memory_bytes"] <= budget]
    assert len(under) == 2 and second["choice"] == min(under, key=lambda r: r["mean_kld"])["type"]
    low = cli("fit", f16, *REAL_TYPES, *REAL, "--max-memory", str(by_memory[0]["memory_bytes"] - 1), "--json")
    assert low.code == 1 and json.loads(low.out)["choice"] is None


@NEEDS_GPU
def test_gpu_memory_per_candidate(samples, tmp_path, cli, monkeypatch):
    """Offloaded, each candidate's GPU memory as the device reports it (free memory before the load minus
    after the run) against llama.cpp's own account of its GPU buffers: at least those, at most those plus
    ggml's CUDA pool (which grows while computing)."""
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    d = json_of(cli("fit", samples.gguf("f16", "medium"), "-t", "q8_0", "-t", "q4_k_m", "--ctx", "512", "--chunks", "2",
                    "-r", "1", "-ngl", "all", "--json", timeout=900))
    for r in d["candidates"]:
        assert r["gpu_buffers_bytes"] > 0.9 * r["size_bytes"], r  # the weights are on the GPU
        assert r["gpu_buffers_bytes"] * 0.98 <= r["gpu_memory_bytes"] <= r["gpu_buffers_bytes"] + (1 << 30), r
        assert r["memory_bytes"] == r["peak_memory_bytes"] + r["gpu_memory_bytes"]


def test_eval_passes_keep_the_open_models_within_the_budget():
    from ggufkit.fit.measure import MODEL_OVERHEAD as O, groups

    assert groups(100, [10, 20, 30], 10**12) == [[0, 1, 2]]  # room for all: one pass
    assert groups(100, [10, 20, 30], 100 + 10 + 20 + 3 * O) == [[0, 1], [2]]
    assert groups(100, [500, 10], 1) == [[0], [1]]  # one candidate a pass at least
