"""`ggufkit convert` on the small GGJT v3 F16 sample vs `cp` of the same file, same run.

Goal (issue 4): convert <= 2x the time of cp, peak RSS <= 200 MB.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPS = 5
WORK = Path(os.environ.get("GGUFKIT_BENCH_DIR", "build/bench"))


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command, measured on that child alone (wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> dict:
    from ggufkit.samples.make import make_sample

    WORK.mkdir(parents=True, exist_ok=True)
    src = WORK / "small-f16.ggmlv3.bin"
    if not src.exists():
        make_sample(src, "f16", "ggjt3", "small")
    out = WORK / "convert-out.gguf"
    copy = WORK / "cp-out.bin"
    conv_t, cp_t, rss = [], [], []
    for _ in range(REPS):
        t, _ = _timed(["cp", str(src), str(copy)])
        cp_t.append(t)
        t, peak = _timed([sys.executable, "-m", "ggufkit", "convert", str(src), "-o", str(out), "--force", "-q"])
        conv_t.append(t)
        rss.append(peak)
        copy.unlink()
    result = {
        "input_bytes": src.stat().st_size,
        "cp_seconds": statistics.median(cp_t),
        "convert_seconds": statistics.median(conv_t),
        "ratio": statistics.median(conv_t) / statistics.median(cp_t),
        "convert_peak_rss_mb": max(rss) / 1e6,
        "goal": "ratio <= 2.0, peak RSS <= 200 MB",
    }
    result["met"] = result["ratio"] <= 2.0 and result["convert_peak_rss_mb"] <= 200
    print(f"convert: {result['convert_seconds']:.3f} s vs cp {result['cp_seconds']:.3f} s "
          f"({result['input_bytes'] / 1e6:.0f} MB): ratio {result['ratio']:.2f}x, "
          f"peak RSS {result['convert_peak_rss_mb']:.0f} MB [{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
