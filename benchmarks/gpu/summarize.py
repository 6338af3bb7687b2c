"""Summarize a device_run.sh result folder: ggufkit bench rows vs llama-bench, and ggufkit run's generation speed."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _llama_bench(path: Path) -> dict[str, float]:
    out = {}
    for e in json.loads(path.read_text()):
        out["pp" if e["n_prompt"] else "tg"] = e["avg_ts"]
    return out


def main(folder: str) -> dict:
    d = Path(folder)
    rows = json.loads((d / "bench.json").read_text())["rows"]
    ref = {"gpu": _llama_bench(d / "llama-bench-gpu.json"), "cpu": _llama_bench(d / "llama-bench-cpu.json")}
    jsonl = d / "run-gpu.jsonl"
    lines = jsonl.read_text().splitlines() if jsonl.exists() else []
    runs = [json.loads(ln)["timings"]["generation_tokens_per_s"] for ln in lines if ln.strip()]
    result: dict = {"rows": [], "run_gpu_tg": statistics.median(runs) if runs else None}
    for r in rows:
        kind = "cpu" if r["gpu_layers"] == 0 else "gpu"
        line = {k: r[k] for k in ("backend", "gpu_layers", "mmap", "threads", "load_ms", "peak_rss_mib", "pp_tps", "tg_tps", "error")}
        if r["error"] is None:
            line["pp_vs_llama_bench"] = r["pp_tps"] / ref[kind]["pp"]
            line["tg_vs_llama_bench"] = r["tg_tps"] / ref[kind]["tg"]
        result["rows"].append(line)
    result["llama_bench"] = ref
    if runs:
        result["run_gpu_tg_vs_llama_bench"] = result["run_gpu_tg"] / ref["gpu"]["tg"]
    for line in result["rows"]:
        print(f"{line['backend']:>5} ngl={line['gpu_layers']:>3} mmap={line['mmap']!s:5} load {line['load_ms']:8.1f} ms "
              f"RSS {line['peak_rss_mib']:7.1f} MiB pp {line['pp_tps']:9.1f} t/s ({line.get('pp_vs_llama_bench', 0):.3f}x) "
              f"tg {line['tg_tps']:8.1f} t/s ({line.get('tg_vs_llama_bench', 0):.3f}x)")
    print(f"llama-bench: {ref}")
    if runs:
        print(f"ggufkit run -ngl all: tg {result['run_gpu_tg']:.1f} t/s = {result['run_gpu_tg_vs_llama_bench']:.3f}x llama-bench -ngl 99")
    (d / "summary.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1])
