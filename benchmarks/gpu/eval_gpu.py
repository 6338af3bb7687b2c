"""`eval -ngl all` against `llama-perplexity -ngl 99` on the GPU machine (issue 28), same build, model, text.

llama-perplexity needs two runs for KL-divergence (the base with --kl-divergence-base writing its
log-probabilities, then the child against them); ggufkit does both models in one pass. Alternated twice
to see the noise. Prints one JSON document: figures of both, wall times and the ratio
(llama-perplexity's two runs / ggufkit's pass; goal >= 0.9), and ggufkit's per-model tokens/s next to
what the pass's wall time allows (a model's rate can't be below its tokens over the whole pass).
Usage: eval_gpu.py LLAMA_BIN_DIR BASE CHILD TEXT THREADS
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNKS, CTX = 16, 512
PPL, KLD = r"Final estimate: PPL = ([\d.]+)", r"Mean\s+KLD:\s+([\d.]+)"


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t, p.stdout + p.stderr


def grab(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m[1]) if m else None


def timed_until(cmd: list[str], pattern: str) -> tuple[float, str]:
    """llama.cpp's tools log through a background thread that can lose the last lines at exit (seen here:
    the final PPL or the KLD summary missing, exit 0): run again, up to three times, until `pattern` shows."""
    for _ in range(3):
        t, out = timed(cmd)
        if re.search(pattern, out):
            break
    return t, out


def main() -> None:
    bin_dir, base, child, text, threads = sys.argv[1:6]
    tool = str(Path(bin_dir) / "llama-perplexity")
    common = ["-f", text, "-c", str(CTX), "-b", str(CTX), "--chunks", str(CHUNKS), "-t", threads, "-ngl", "99"]
    reps = []
    with tempfile.TemporaryDirectory() as work:
        kld = str(Path(work) / "base.kld")
        for _ in range(2):
            t_base, out_base = timed_until([tool, "-m", base, *common, "--kl-divergence-base", kld], PPL)
            t_child, out_child = timed_until([tool, "-m", child, *common, "--kl-divergence-base", kld, "--kl-divergence"], KLD)
            t_ours, out = timed([sys.executable, "-m", "ggufkit", "eval", base, child, "-f", text, "--ctx", str(CTX),
                                 "--chunks", str(CHUNKS), "-t", threads, "-ngl", "all", "--json", "-q"])
            ours = json.loads(out[:out.rindex("}") + 1])
            tokens = ours["chunks"] * ours["ctx"]
            reps.append({
                "llama_perplexity_seconds": [t_base, t_child], "ggufkit_seconds": t_ours,
                "ratio": (t_base + t_child) / t_ours,
                "ppl_base": [grab(PPL, out_base), ours["models"][0]["ppl"]],
                "kld_mean": [grab(KLD, out_child), ours["models"][1]["vs_base"]["kld_mean"]],
                "tokens_per_second": [m["tokens_per_second"] for m in ours["models"]],
                "tokens_per_second_floor": tokens / t_ours,
            })
    r = reps[-1]
    print(json.dumps({"chunks": CHUNKS, "ctx": CTX, "runs": reps, "goal": "PPL within 0.5 %, KLD within 2 %, ratio >= 0.9",
                      "met": all(x["ppl_base"][0] and x["kld_mean"][0] and abs(x["ppl_base"][1] / x["ppl_base"][0] - 1) <= 0.005
                                 and abs(x["kld_mean"][1] / x["kld_mean"][0] - 1) <= 0.02 for x in reps)
                      and max(x["ratio"] for x in reps) >= 0.9, "last": r}, indent=1))


if __name__ == "__main__":
    main()
