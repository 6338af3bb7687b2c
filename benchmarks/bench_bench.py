"""`ggufkit bench` vs llama.cpp's own `llama-bench` on the small sample Q4_K_M, same threads, same run.

Goal (issue 7): pp512 and tg128 agree with llama-bench within ±5% (ratio ggufkit / llama-bench in
[0.95, 1.05]). llama-bench is built from the llama.cpp sources vendored in the pinned llama-cpp-python
sdist (benchmarks/llama_tools.sh). Each of ROUNDS rounds runs both tools back to back (-r 3 after a
warm-up in both; who goes first alternates). The goal is judged on the median of the per-round ratios,
so a neighbour's load on a shared machine or a clock drift tends to hit both alike; the ratio of each
side's best round is reported too. The real models of `make models` (issue 16: SmolLM2-135M Q4_1, Gemma 3
270M Q4_K_M) are measured and judged the same way, in REAL_ROUNDS rounds (each takes longer). On a busy 2-core machine the rounds swing by 2x: run it idle.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from benchmarks.common import real_models, run, sample, tools

ROUNDS = int(os.environ.get("GGUFKIT_BENCH_ROUNDS", "4"))
REAL_ROUNDS = int(os.environ.get("GGUFKIT_BENCH_REAL_ROUNDS", "2"))
THREADS = int(os.environ.get("GGUFKIT_BENCH_THREADS", "2"))  # the issue asks for 2; 1 is steadier on a busy machine
N_PROMPT, N_GEN, REPS = 512, 128, 3
GOAL = 0.05


def theirs(bin_dir: Path, model: Path) -> dict[str, float]:
    out = run([str(bin_dir / "llama-bench"), "-m", str(model), "-p", str(N_PROMPT), "-n", str(N_GEN),
                "-t", str(THREADS), "-r", str(REPS), "-o", "json"])
    tests = json.loads(out)
    pp = next(t for t in tests if t["n_prompt"] == N_PROMPT and t["n_gen"] == 0)
    tg = next(t for t in tests if t["n_gen"] == N_GEN and t["n_prompt"] == 0)
    return {"pp": pp["avg_ts"], "tg": tg["avg_ts"]}


def ours(model: Path) -> dict[str, float]:
    out = run([sys.executable, "-m", "ggufkit", "bench", str(model), "-p", str(N_PROMPT), "-n", str(N_GEN),
                "-t", str(THREADS), "-r", str(REPS), "--format", "json", "-q"])
    row = json.loads(out)["rows"][0]
    return {"pp": row["pp_tps"], "tg": row["tg_tps"], "load_ms": row["load_ms"], "peak_rss_mib": row["peak_rss_mib"]}


def measure(bin_dir: Path, label: str, model: Path, rounds: int) -> dict:
    ref_runs, our_runs = [], []
    for i in range(rounds):  # who goes first alternates, so a drift (clock, neighbours) favours neither
        if i % 2:
            our_runs.append(ours(model))
        ref_runs.append(theirs(bin_dir, model))
        if not i % 2:
            our_runs.append(ours(model))
    result: dict = {"model": str(model), "threads": THREADS, "rounds": rounds, "repetitions": REPS,
                    "llama_bench_runs": ref_runs, "ggufkit_runs": our_runs, "goal": f"ratio within 1 ± {GOAL}"}
    met = True
    parts = []
    for m, n in (("pp", N_PROMPT), ("tg", N_GEN)):
        ref, got = statistics.median(r[m] for r in ref_runs), statistics.median(r[m] for r in our_runs)
        ratio = statistics.median(o[m] / t[m] for o, t in zip(our_runs, ref_runs))
        best_ratio = max(r[m] for r in our_runs) / max(r[m] for r in ref_runs)
        result[f"{m}{n}"] = {"llama_bench_tps": ref, "ggufkit_tps": got, "ratio": ratio, "best_ratio": best_ratio}
        met = met and abs(ratio - 1) <= GOAL
        parts.append(f"{m}{n} ggufkit {got:.1f} t/s vs llama-bench {ref:.1f} t/s: ratio {ratio:.3f} "
                     f"(best rounds {best_ratio:.3f})")
    result["met"] = met
    print(f"bench {label} ({model.stat().st_size / 1e6:.0f} MB, {THREADS} threads, -r {REPS}, "
          f"{rounds} paired rounds, medians): {'; '.join(parts)} [{'met' if met else 'MISSED'}]", flush=True)
    return result


def main() -> dict:
    bin_dir = tools()
    result = measure(bin_dir, "small Q4_K_M", sample("small-q4_k_m.gguf", "q4_k_m"), ROUNDS)
    result["real"] = {label: measure(bin_dir, label, path, REAL_ROUNDS) for label, path in real_models()}
    result["met"] = result["met"] and all(r["met"] for r in result["real"].values())
    return result


if __name__ == "__main__":
    main()
