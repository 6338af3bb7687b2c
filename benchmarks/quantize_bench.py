"""`ggufkit quantize` vs llama.cpp's own `llama-quantize` on the small F32 sample, same threads, same run.

Goal (issue 5): ggufkit's wall time <= 1.05x llama-quantize's for F32 -> Q4_K_M, and outputs byte-identical
to llama-quantize's (Q4_K_M, Q8_0, IQ4_XS, and IQ2_XXS with an importance matrix).
llama-quantize is built from the llama.cpp sources vendored in the pinned llama-cpp-python sdist
(benchmarks/llama_tools.sh; several minutes the first time, then cached outside the repo).
"""

from __future__ import annotations

import filecmp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import sample, tools

REPS = int(os.environ.get("GGUFKIT_BENCH_REPS", "7"))
GOAL = 1.05
IDENTICAL = ("Q8_0", "IQ4_XS")  # besides the timed Q4_K_M


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys, its own children included) of one command."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def _ours(src: Path, out: Path, qtype: str, threads: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ggufkit", "quantize", str(src), "-t", qtype, "-o", str(out),
            "--threads", str(threads), "--force", "-q", *extra]


def _theirs(bin_dir: Path, src: Path, out: Path, qtype: str, threads: int, *extra: str) -> list[str]:
    return [str(bin_dir / "llama-quantize"), *extra, str(src), str(out), qtype, str(threads)]


def _imatrix(model: Path, path: Path) -> Path:
    """A synthetic importance matrix for every 2-D weight (a real one would need a text run through the model)."""
    from ggufkit.samples.imatrix import write_synthetic_imatrix

    return write_synthetic_imatrix(model, path, chunks=2, seed=0)


def main() -> dict:
    bin_dir = tools()
    src = sample("small-f32.gguf", "f32")
    threads = os.cpu_count() or 1
    ours_out, ref_out = src.with_name("quantize-ours.gguf"), src.with_name("quantize-ref.gguf")

    # One untimed round of each warms the page cache, so neither side pays for the first read.
    _timed(_theirs(bin_dir, src, ref_out, "Q4_K_M", threads))
    _timed(_ours(src, ours_out, "q4_k_m", threads))
    ours_t, ref_t, ours_cpu, ref_cpu = [], [], [], []
    for _ in range(REPS):  # interleaved, so a change in the machine's load hits both sides alike
        wall, cpu = _timed(_theirs(bin_dir, src, ref_out, "Q4_K_M", threads))
        ref_t.append(wall)
        ref_cpu.append(cpu)
        wall, cpu = _timed(_ours(src, ours_out, "q4_k_m", threads))
        ours_t.append(wall)
        ours_cpu.append(cpu)
    identical = {"Q4_K_M": filecmp.cmp(ours_out, ref_out, shallow=False)}

    for qtype in IDENTICAL:
        _timed(_theirs(bin_dir, src, ref_out, qtype, threads))
        _timed(_ours(src, ours_out, qtype, threads))
        identical[qtype] = filecmp.cmp(ours_out, ref_out, shallow=False)
    im = _imatrix(src, src.with_name("imatrix-synthetic.gguf"))
    _timed(_theirs(bin_dir, src, ref_out, "IQ2_XXS", threads, "--imatrix", str(im)))
    _timed(_ours(src, ours_out, "iq2_xxs", threads, "--imatrix", str(im)))
    identical["IQ2_XXS+imatrix"] = filecmp.cmp(ours_out, ref_out, shallow=False)
    ours_out.unlink()
    ref_out.unlink()

    ours_s, ref_s = statistics.median(ours_t), statistics.median(ref_t)
    result = {
        "input_bytes": src.stat().st_size,
        "threads": threads,
        "repetitions": REPS,
        "llama_quantize_seconds": ref_s,
        "ggufkit_seconds": ours_s,
        "ratio": ours_s / ref_s,
        "ratio_of_fastest": min(ours_t) / min(ref_t),  # less sensitive to other load on the machine
        "paired_ratio": statistics.median(o / r for o, r in zip(ours_t, ref_t)),  # each run vs the one just before
        "cpu_ratio": statistics.median(ours_cpu) / statistics.median(ref_cpu),
        "ggufkit_runs": ours_t,
        "llama_quantize_runs": ref_t,
        "byte_identical": identical,
        "goal": f"ratio <= {GOAL}, outputs byte-identical",
    }
    result["met"] = result["ratio"] <= GOAL and all(identical.values())
    same = ", ".join(f"{k} {'same' if v else 'DIFFERENT'}" for k, v in identical.items())
    print(f"quantize F32->Q4_K_M ({src.stat().st_size / 1e6:.0f} MB, {threads} threads, median of {REPS}): "
          f"ggufkit {ours_s:.2f} s vs llama-quantize {ref_s:.2f} s: ratio {result['ratio']:.3f}x "
          f"(paired {result['paired_ratio']:.3f}x, fastest runs {result['ratio_of_fastest']:.3f}x, "
          f"CPU time {result['cpu_ratio']:.3f}x); {same} "
          f"[{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
