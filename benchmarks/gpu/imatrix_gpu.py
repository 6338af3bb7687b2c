"""`imatrix -ngl all` on the GPU machine against `llama-imatrix -ngl 99` (same build, model, text) and against
ggufkit's own CPU matrix: the three matrices compared (benchmarks/imatrix_bench.py's compare), wall times.
Usage: imatrix_gpu.py LLAMA_BIN_DIR MODEL TEXT THREADS CHUNKS; prints one JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.imatrix_bench import compare  # noqa: E402


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    bin_dir, model, text, threads, chunks = sys.argv[1:6]
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        ours = [sys.executable, "-m", "ggufkit", "imatrix", model, "-f", text, "--chunks", chunks, "--ctx", "512",
                "-t", threads, "--force", "-q"]
        theirs = [Path(bin_dir) / "llama-imatrix", "-m", model, "-f", text, "--chunks", chunks, "-c", "512",
                  "-t", threads, "-ngl", "99"]
        times: dict[str, list[float]] = {"llama_gpu": [], "ours_gpu": []}
        for _ in range(2):  # interleaved
            times["llama_gpu"].append(timed([*theirs, "-o", w / "llama.gguf"]))
            times["ours_gpu"].append(timed([*ours, "-ngl", "all", "-o", w / "gpu.gguf"]))
        cpu = os.environ.get("IMATRIX_CPU", "1") != "0"  # 0: skip the CPU run (a 7B model's is slow)
        t_cpu = timed([*ours, "-o", w / "cpu.gguf"]) if cpu else None
        doc = {"model": Path(model).name, "chunks": int(chunks), "seconds": times, "seconds_ours_cpu": t_cpu,
               "speed_ratio": min(times["llama_gpu"]) / min(times["ours_gpu"]),
               "gpu_vs_llama_gpu": compare(w / "gpu.gguf", w / "llama.gguf"),
               "gpu_vs_ours_cpu": compare(w / "gpu.gguf", w / "cpu.gguf") if cpu else None,
               "goal": "GPU matrix within 1e-3 relative of the CPU one; speed vs llama-imatrix -ngl 99"}
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
