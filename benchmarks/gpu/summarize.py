"""Summarize a device_run.sh result folder into summary.json (and a few printed lines).

For each sample model: ggufkit bench's rows against llama-bench on the same build (GPU rows against the
mean of the llama-bench -ngl 99 runs made before and after, whose own spread is printed as the noise
floor), and the median generation speed of each `ggufkit run -ngl all` variant against llama-bench's tg.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def _speeds(results: list[dict]) -> dict[str, float]:
    return {("pp" if e["n_prompt"] else "tg"): e["avg_ts"] for e in results}


def _llama_bench(d: Path) -> dict[tuple[str, str], list[dict[str, float]]]:
    """(model, "gpu"|"cpu") -> the speeds of each llama-bench run, in run order."""
    found: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    path = d / "llama-bench.jsonl"
    for ln in path.read_text().splitlines() if path.exists() else []:
        if ln.strip():
            doc = json.loads(ln)
            found[(doc["model"], "cpu" if doc["ngl"] == 0 else "gpu")].append(_speeds(doc["results"]))
    return found


def _bench_rows(path: Path, ref: dict[str, dict[str, float]]) -> list[dict]:
    rows = []
    for r in json.loads(path.read_text())["rows"] if path.exists() else []:
        kind = "cpu" if r["gpu_layers"] == 0 else "gpu"
        line = {k: r[k] for k in ("backend", "gpu_layers", "mmap", "threads", "ctx", "load_ms", "peak_rss_mib",
                                  "pp_tps", "tg_tps", "error") if k in r}
        if r["error"] is None and kind in ref:
            line["pp_vs_llama_bench"] = r["pp_tps"] / ref[kind]["pp"]
            line["tg_vs_llama_bench"] = r["tg_tps"] / ref[kind]["tg"]
        rows.append(line)
    return rows


def _model(d: Path, size: str, lb: dict) -> dict | None:
    gpu_runs = lb.get((size, "gpu"))
    if not gpu_runs:
        return None
    per_test = {k: [r[k] for r in gpu_runs if k in r] for k in ("pp", "tg")}  # a run may have measured only one
    gpu = {k: statistics.fmean(v) for k, v in per_test.items()}
    out: dict = {"llama_bench_gpu_runs": gpu_runs, "llama_bench_gpu": gpu,
                 "llama_bench_gpu_spread": {k: max(v) / min(v) for k, v in per_test.items()}}
    ref = {"gpu": gpu}
    if lb.get((size, "cpu")):
        ref["cpu"] = out["llama_bench_cpu"] = lb[(size, "cpu")][-1]
    out["bench_rows"] = [*_bench_rows(d / f"bench-{size}.json", ref), *_bench_rows(d / f"bench-{size}-ctx4096.json", ref)]
    return out


def _runs(d: Path) -> dict[str, dict[str, list[float]]]:
    path = d / "runs.jsonl"
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ln in path.read_text().splitlines() if path.exists() else []:
        if ln.strip():
            doc = json.loads(ln)
            found[doc["model"]][doc["variant"]].append(doc["timings"]["generation_tokens_per_s"])
    return found


def main(folder: str) -> dict:
    d = Path(folder)
    runs, lb = _runs(d), _llama_bench(d)
    result: dict = {}
    for size in ("small", "medium"):
        m = _model(d, size, lb)
        if m is None:
            continue
        tg = m["llama_bench_gpu"]["tg"]
        m["run_gpu"] = {v: {"tg_tps_runs": tps, "tg_tps_median": statistics.median(tps),
                            "vs_llama_bench_tg": statistics.median(tps) / tg}
                        for v, tps in runs.get(size, {}).items()}
        result[size] = m
        spread = m["llama_bench_gpu_spread"]
        print(f"[{size}] llama-bench -ngl 99: pp {m['llama_bench_gpu']['pp']:.1f} tg {tg:.1f} t/s (mean of "
              f"{len(m['llama_bench_gpu_runs'])} runs; max/min pp {spread['pp']:.3f}x, tg {spread['tg']:.3f}x)")
        for r in m["bench_rows"]:
            print(f"  bench {r['backend']:>5} ngl={r['gpu_layers']:>3} mmap={r['mmap']!s:5} ctx={r.get('ctx', '?')!s:>4} load {r['load_ms']:8.1f} ms "
                  f"RSS {r['peak_rss_mib']:7.1f} MiB pp {r['pp_tps']:9.1f} t/s ({r.get('pp_vs_llama_bench', 0):.3f}x) "
                  f"tg {r['tg_tps']:8.1f} t/s ({r.get('tg_vs_llama_bench', 0):.3f}x)")
        for v, r in m["run_gpu"].items():
            print(f"  run -ngl all, {v:<32} tg {r['tg_tps_median']:8.1f} t/s = {r['vs_llama_bench_tg']:.3f}x")
    (d / "summary.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1])
