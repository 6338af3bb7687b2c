"""`imatrix -ngl all` on the GPU machine (issue 22): its matrix against the CPU one and llama-imatrix -ngl 99's,
and its time against llama-imatrix's, same build, model, text and chunks.

Goals: the GPU matrix within 1e-3 relative of the CPU one (same tensors, identical counts); ggufkit's GPU
run >= 0.9x llama-imatrix -ngl 99 (whole-command wall time, alternated twice).
Usage: imatrix_gpu.py LLAMA_BIN_DIR MODEL TEXT THREADS; prints one JSON document.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.imatrix_bench import compare

CHUNKS, CTX = 10, 512


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    bin_dir, model, text, threads = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        ours = [sys.executable, "-m", "ggufkit", "imatrix", model, "-f", text, "--ctx", CTX, "--chunks", CHUNKS,
                "-t", threads, "--force", "-q"]
        theirs = [Path(bin_dir) / "llama-imatrix", "-m", model, "-f", text, "-c", CTX, "--chunks", CHUNKS,
                  "-t", threads, "-ngl", "99", "-o", w / "llama-gpu.gguf"]
        runs = []
        for _ in range(2):
            runs.append({"llama_imatrix_seconds": timed(theirs),
                         "ggufkit_seconds": timed([*ours, "-ngl", "all", "-o", w / "gpu.gguf"])})
            runs[-1]["ratio"] = runs[-1]["llama_imatrix_seconds"] / runs[-1]["ggufkit_seconds"]
        cpu_seconds = timed([*ours, "-ngl", "0", "-o", w / "cpu.gguf"])
        gpu_vs_cpu = compare(w / "gpu.gguf", w / "cpu.gguf")
        gpu_vs_llama = compare(w / "gpu.gguf", w / "llama-gpu.gguf")
    print(json.dumps({
        "model": model, "chunks": CHUNKS, "ctx": CTX, "runs": runs, "ggufkit_cpu_seconds": cpu_seconds,
        "gpu_vs_cpu": gpu_vs_cpu, "gpu_vs_llama_imatrix_gpu": gpu_vs_llama,
        "goal": "GPU matrix within 1e-3 of the CPU one, identical counts; ratio >= 0.9",
        "met": gpu_vs_cpu["same_tensors_and_counts"] and gpu_vs_cpu["in_sum2_max_rel_diff"] <= 1e-3
        and max(r["ratio"] for r in runs) >= 0.9}, indent=1))


if __name__ == "__main__":
    main()
