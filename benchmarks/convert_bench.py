"""`ggufkit convert` vs `cp` of the same file, same run: the small GGJT v3 F16 sample (blocks copied in
the kernel) and the small GGJT v1 Q4_0 sample (every quantized block repacked: nibble order and f32
scales, streamed through numpy).

Goals: GGJT v3 (issue 4) convert <= 2x cp; GGJT v1 Q4_0 (issue 13) <= 3x cp; peak RSS <= 200 MB for both.
convert fsyncs its output before renaming it into place and cp does not, so `cp` + `sync FILE` is
reported beside plain `cp`.
"""

from __future__ import annotations

import statistics
import sys

from benchmarks.common import sample, timed

REPS = 5


CASES = (  # (sample file, type, format, goal as a multiple of cp)
    ("small-f16.ggmlv3.bin", "f16", "ggjt3", 2.0),
    ("small-q4_0.ggjtv1.bin", "q4_0", "ggjt1", 3.0),
)


def measure(name: str, type_name: str, fmt: str, goal: float) -> dict:
    src = sample(name, type_name, fmt)
    out, copy = src.with_name("convert-out.gguf"), src.with_name("cp-out.bin")
    conv_t, cp_t, cps_t, rss = [], [], [], []
    for _ in range(REPS):
        cp_t.append(timed(["cp", str(src), str(copy)])[0])
        copy.unlink()
        cps_t.append(timed(["sh", "-c", f"cp '{src}' '{copy}' && sync '{copy}'"])[0])
        copy.unlink()
        t, peak = timed([sys.executable, "-m", "ggufkit", "convert", str(src), "-o", str(out), "--force", "-q"])
        conv_t.append(t)
        rss.append(peak)
    out.unlink()
    med = statistics.median
    result = {
        "input": name,
        "input_bytes": src.stat().st_size,
        "cp_seconds": med(cp_t),
        "cp_sync_seconds": med(cps_t),
        "convert_seconds": med(conv_t),
        "ratio_vs_cp": med(conv_t) / med(cp_t),
        "ratio_vs_cp_sync": med(conv_t) / med(cps_t),
        "convert_peak_rss_mb": max(rss) / 1e6,
        "goal": f"ratio_vs_cp <= {goal}, peak RSS <= 200 MB",
    }
    result["met"] = result["ratio_vs_cp"] <= goal and result["convert_peak_rss_mb"] <= 200
    print(f"convert {name}: {result['convert_seconds']:.3f} s vs cp {result['cp_seconds']:.3f} s, cp+sync "
          f"{result['cp_sync_seconds']:.3f} s ({result['input_bytes'] / 1e6:.0f} MB): "
          f"{result['ratio_vs_cp']:.2f}x cp, {result['ratio_vs_cp_sync']:.2f}x cp+sync, "
          f"peak RSS {result['convert_peak_rss_mb']:.0f} MB [{'met' if result['met'] else 'MISSED'}]")
    return result


def main() -> dict:
    results = {case[2]: measure(*case) for case in CASES}
    return {**results, "met": all(r["met"] for r in results.values())}


if __name__ == "__main__":
    main()
