"""`ggufkit run` generation speed vs llama.cpp's own `llama-bench -p 0 -n 128`, same model, threads, run.

Goal (issue 6): ggufkit's generated tokens/s >= 0.95x llama-bench's on the small Q4_K_M sample.
Both sides are measured alternately REPS times (each ggufkit run is a fresh `ggufkit run` process reading
its own timings from --json); the ratio is the median of the per-pair ratios, so load from other processes
on a shared machine hits both sides of a pair alike. GGUFKIT_BENCH_THREADS overrides the thread count.
llama-bench comes from benchmarks/llama_tools.sh (built from the vendored llama.cpp sources, cached).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from benchmarks.common import run, sample, tools

REPS = int(os.environ.get("GGUFKIT_BENCH_REPS", "5"))
GOAL = 0.95
N_GEN = 128


def llama_bench_tps(bin_dir: Path, model: Path, threads: int) -> float:
    out = run([str(bin_dir / "llama-bench"), "-m", str(model), "-p", "0", "-n", str(N_GEN), "-t", str(threads),
                "-r", "1", "-o", "json"])
    (row,) = [r for r in json.loads(out) if r.get("n_gen") == N_GEN]
    return float(row["avg_ts"])


def ggufkit_tps(model: Path, threads: int) -> float:
    # --ignore-eos is not a flag: a random-weight model under greedy decoding does not end its text early;
    # the count is checked so a short run cannot flatter the figure.
    out = run([sys.executable, "-m", "ggufkit", "run", str(model), "-p", "hello", "-n", str(N_GEN), "--temp", "0",
                "--ctx", "256", "--threads", str(threads), "--json"])
    doc = json.loads(out)
    if doc["generated_tokens"] != N_GEN:
        raise SystemExit(f"ggufkit run generated {doc['generated_tokens']} tokens, not {N_GEN}")
    return float(doc["timings"]["generation_tokens_per_s"])


def main() -> dict:
    bin_dir = tools()
    model = sample("small-q4_k_m.gguf", "q4_k_m")
    threads = int(os.environ.get("GGUFKIT_BENCH_THREADS", "0")) or os.cpu_count() or 1
    llama_bench_tps(bin_dir, model, threads)  # warm the page cache for both
    ggufkit_tps(model, threads)
    ours, ref = [], []
    for _ in range(REPS):
        ref.append(llama_bench_tps(bin_dir, model, threads))
        ours.append(ggufkit_tps(model, threads))
    ours_m, ref_m = statistics.median(ours), statistics.median(ref)
    result = {
        "model_bytes": model.stat().st_size,
        "threads": threads,
        "repetitions": REPS,
        "n_gen": N_GEN,
        "llama_bench_tokens_per_s": ref_m,
        "ggufkit_tokens_per_s": ours_m,
        "ratio": statistics.median(o / r for o, r in zip(ours, ref)),
        "ggufkit_runs": ours,
        "llama_bench_runs": ref,
        "goal": f"ratio >= {GOAL}",
    }
    result["met"] = result["ratio"] >= GOAL
    print(f"run tg{N_GEN} small Q4_K_M ({threads} threads, median of {REPS}): ggufkit {ours_m:.1f} t/s vs "
          f"llama-bench {ref_m:.1f} t/s: ratio {result['ratio']:.3f}x (median of pairs) "
          f"[{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
