"""Generation speed of `ggufkit run` at its defaults on a busy machine, against its idle speed and llama-bench.

Goal (issue 17): with one busy-loop process per two allowed CPUs running beside it, `run` at its default
thread count keeps >= 50 % of its idle generation speed; and idle, its default stays within 5 % of the
speed it had before (every core, libgomp's default wait: `run -t <cores>` with GOMP_SPINCOUNT unset,
which is what the default did). llama-bench (benchmarks/llama_tools.sh) at its own default threads is
the reference under the same load. Each figure is the median of REPS runs; idle and loaded rounds
alternate, so a neighbour's load on a shared machine hits both alike. The load average and the share
of the CPUs others used in each phase are recorded, since "idle" on a shared machine is relative.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

from benchmarks.common import run, sample, tools
from ggufkit.runtime import cpuload

REPS = int(os.environ.get("GGUFKIT_BENCH_REPS", "5"))
N_GEN = 64
KEEP_LOADED, KEEP_IDLE = 0.50, 0.95
CPUS = len(cpuload.allowed_cpus())


def ggufkit_tps(model: Path, args: tuple[str, ...] = (), spin: str | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if spin is not None:
        env["GOMP_SPINCOUNT"] = spin
    out = subprocess.run([sys.executable, "-m", "ggufkit", "run", str(model), "-p", "hi", "-n", str(N_GEN), "--temp",
                          "0", "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"ggufkit run failed: {out.stderr[-1000:]}")
    return float(json.loads(out.stdout)["timings"]["generation_tokens_per_s"])


def llama_bench_tps(bin_dir: Path, model: Path) -> float:
    out = run([str(bin_dir / "llama-bench"), "-m", str(model), "-p", "0", "-n", str(N_GEN), "-r", "1", "-o", "json"])
    (row,) = [r for r in json.loads(out) if r.get("n_gen") == N_GEN]
    return float(row["avg_ts"])


@contextmanager
def busy_loops(n: int):
    """`n` processes that spin forever (python3 -c 'while True: pass'), ended on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def others_busy() -> float:
    """CPUs (of the allowed ones) that other processes kept busy over 0.5 s."""
    return round(CPUS - cpuload.free_cpus(cpuload.snapshot(), 0.5), 2)


def main() -> dict:
    bin_dir = tools()
    model = sample("small-q4_k_m.gguf", "q4_k_m")
    n_loops = max(1, CPUS // 2)
    # before: what the default was (every core, libgomp's own spin count: 300,000 rounds);
    # forced: the user's `-t <cores>` now (obeyed; a short spin when the cores are not free)
    kinds = {"default": ((), None), "before": (("-t", str(CPUS)), "300000"), "forced": (("-t", str(CPUS)), None)}
    runs: dict[str, dict[str, list[float]]] = {p: {k: [] for k in [*kinds, "llama_bench"]} for p in ("idle", "loaded")}
    seen: dict[str, list[float]] = {"idle": [], "loaded": []}
    llama_bench_tps(bin_dir, model)  # warm the page cache for both
    ggufkit_tps(model)
    for _ in range(REPS):
        for phase in ("idle", "loaded"):
            with busy_loops(n_loops) if phase == "loaded" else nullcontext():
                seen[phase].append(others_busy())
                for name, (args, spin) in kinds.items():
                    runs[phase][name].append(ggufkit_tps(model, args, spin))
                runs[phase]["llama_bench"].append(llama_bench_tps(bin_dir, model))
    med = {p: {k: statistics.median(v) for k, v in r.items()} for p, r in runs.items()}
    keep_loaded = med["loaded"]["default"] / med["idle"]["default"]
    keep_idle = med["idle"]["default"] / med["idle"]["before"]
    result = {
        "model": str(model), "cpus": CPUS, "busy_loops": n_loops, "n_gen": N_GEN, "repetitions": REPS,
        "others_busy_cpus": {p: statistics.median(v) for p, v in seen.items()},
        "load_average": os.getloadavg(), "medians_tps": med, "runs_tps": runs,
        "loaded_over_idle": keep_loaded, "idle_over_before": keep_idle,
        "llama_bench_loaded_over_idle": med["loaded"]["llama_bench"] / med["idle"]["llama_bench"],
        "goal": f"loaded/idle >= {KEEP_LOADED}, idle default / before >= {KEEP_IDLE}",
    }
    result["met"] = keep_loaded >= KEEP_LOADED and keep_idle >= KEEP_IDLE
    i, lo = med["idle"], med["loaded"]
    print(f"run tg{N_GEN} small Q4_K_M, {CPUS} CPUs, {n_loops} busy loop(s) (others kept "
          f"{result['others_busy_cpus']['idle']:.2f} / {result['others_busy_cpus']['loaded']:.2f} CPUs busy "
          f"idle / loaded), medians of {REPS}: ggufkit default {i['default']:.1f} -> {lo['default']:.1f} t/s "
          f"({keep_loaded:.2f} kept); before (-t {CPUS}) {i['before']:.1f} -> {lo['before']:.1f}; -t {CPUS} now "
          f"{i['forced']:.1f} -> {lo['forced']:.1f}; llama-bench "
          f"{i['llama_bench']:.1f} -> {lo['llama_bench']:.1f}; idle default / before {keep_idle:.3f} "
          f"[{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
