"""`ggufkit fit` against the same steps by hand through llama.cpp's own tools, built from the same sources.

By hand, for N types: llama-quantize per type; llama-perplexity --kl-divergence-base on the F16 base, then
one llama-perplexity --kl-divergence run per type; llama-bench per type (pp 512, tg 64, 3 runs, as fit
measures). ggufkit: one `fit` over the same types, same context, chunks and threads, from an empty cache.
Goal: fit takes less (ratio = by hand / fit > 1). Also timed: a second fit with a memory budget, which
reads every figure back (goal: under a quarter of the first's time).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import WORK, tools
from benchmarks.eval_bench import _text, _timed

TYPES = ("Q8_0", "Q4_K_M", "Q2_K")
CTX = 512
CHUNKS = 4
REPS = 3


def _by_hand(bin_dir: Path, base: Path, text: Path, work: Path, threads: str) -> float:
    started = time.perf_counter()
    kld = work / "base.kld"
    common = ["-c", str(CTX), "-b", str(CTX), "--chunks", str(CHUNKS), "-t", threads]
    _timed([str(bin_dir / "llama-perplexity"), "-m", str(base), "-f", str(text), *common, "--kl-divergence-base",
            str(kld)])
    for t in TYPES:
        out = work / f"by-hand-{t}.gguf"
        _timed([str(bin_dir / "llama-quantize"), str(base), str(out), t, threads])
        _timed([str(bin_dir / "llama-perplexity"), "-m", str(out), "--kl-divergence-base", str(kld), "--kl-divergence",
                *common])
        _timed([str(bin_dir / "llama-bench"), "-m", str(out), "-p", "512", "-n", "64", "-r", str(REPS), "-t", threads])
    return time.perf_counter() - started


def main() -> dict:
    from ggufkit.models import model_path

    bin_dir = tools()
    base = model_path("smollm2", f16=True)
    WORK.mkdir(parents=True, exist_ok=True)
    text = _text()
    threads = str(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        work = Path(tmp)
        hand_s = _by_hand(bin_dir, base, text, work, threads)
        os.environ["GGUFKIT_CACHE"] = str(work / "cache")  # an empty cache: fit quantizes and measures all
        cmd = [sys.executable, "-m", "ggufkit", "fit", str(base), *(a for t in TYPES for a in ("-t", t)), "--ctx",
               str(CTX), "--chunks", str(CHUNKS), "-r", str(REPS), "--threads", threads, "-f", str(text), "--json", "-q"]
        try:
            fit_s, _, out = _timed(cmd)
            rows = json.loads(out)["candidates"]
            budget = sorted(r["memory_bytes"] for r in rows)[1]
            again_s, _, _ = _timed([*cmd, "--max-memory", str(budget)])
        finally:
            del os.environ["GGUFKIT_CACHE"]
    result = {
        "model": base.name, "types": list(TYPES), "ctx": CTX, "chunks": CHUNKS, "threads": int(threads),
        "seconds_by_hand": hand_s, "seconds_fit": fit_s, "ratio": hand_s / fit_s,
        "seconds_second_fit": again_s, "second_share": again_s / fit_s,
        "goal": "fit faster than the tools by hand (ratio > 1); a second fit under 1/4 of the first's time",
    }
    result["met"] = result["ratio"] > 1 and result["second_share"] < 0.25
    print(f"fit {base.name} over {len(TYPES)} types: {fit_s:.1f} s; by hand through llama-quantize, llama-perplexity "
          f"and llama-bench: {hand_s:.1f} s ({result['ratio']:.2f}x); a second fit with a budget {again_s:.1f} s "
          f"({100 * result['second_share']:.1f} % of the first) [{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
