"""`convert` at LLaMA-7B's size against `cp` + `sync` of the same bytes (issue 27). On demand only:
`make bench BENCH=scale`, `python -m benchmarks.run scale` or `python -m benchmarks.scale_bench`.

Two 7B samples (`ggufkit sample --size 7b`, made once and kept in the work folder):
  - GGJT v1 Q4_0, 4.2 GB: every quantized block repacked (old nibble order, f32 scales rounded to f16);
  - GGMF F16 in two parts, 13.5 GB: joined (the tensors cut along their rows' length interleaved, the rest
    copied in the kernel part by part).
Each is converted REPS times, each time beside `cp` + `sync` of the same bytes (every part), alternating so
the page cache and other processes' load hit both alike (the input is read once first, so neither pays for
reading it cold); the ratio is the median of the per-pair ratios. convert fsyncs its output before naming
it, hence `sync` after `cp`. Peak RSS is each convert child's own (wait4). Then the result is inspected
(a fresh process, header only) and `run` loads it and generates a few tokens.

Goals: convert <= 1.5x cp+sync, peak RSS <= 200 MB, inspect <= 1 s, run generates. The sample's own
writing (seconds, peak RSS; goal <= 600 MB) is reported when it had to be made.
It needs ~40 GB free in its folder (GGUFKIT_SCALE_DIR, default /tmp/ggufkit-scale: the two samples and
one output at a time) and refuses to start with less. Delete the folder afterwards to get the space back.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ON_DEMAND = True  # benchmarks/run.py runs it only when named
WORK = Path(os.environ.get("GGUFKIT_SCALE_DIR", "/tmp/ggufkit-scale"))
REPS = int(os.environ.get("GGUFKIT_BENCH_REPS", "2"))
NEED_BYTES = 40e9
GOAL_RATIO, GOAL_RSS, GOAL_INSPECT, GOAL_SAMPLE_RSS = 1.5, 200e6, 1.0, 600e6
CASES = (  # (file, type, format, parts)
    ("llama-7b-q4_0.ggjt1.bin", "q4_0", "ggjt1", 1),
    ("llama-7b-f16.ggmf.bin", "f16", "ggmf", 2),
)


def _measured(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) of that child alone (wait4), and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read()[-2000:]}")
        out.seek(0)
        return elapsed, usage.ru_maxrss * 1024, out.read()


def _parts(path: Path, parts: int) -> list[Path]:
    return [path if k == 0 else Path(f"{path}.{k}") for k in range(parts)]


def _check_disk() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    have = sum(p.stat().st_size for name, _, _, parts in CASES for p in _parts(WORK / name, parts) if p.exists())
    free = shutil.disk_usage(WORK).free
    if free + have < NEED_BYTES:
        raise SystemExit(f"scale_bench needs ~{NEED_BYTES / 1e9:.0f} GB of free disk in {WORK} (the 7B samples and "
                         f"one output at a time); {free / 1e9:.1f} GB free: set GGUFKIT_SCALE_DIR to a roomier disk")


def _sample(name: str, type_name: str, fmt: str, parts: int) -> dict:
    path = WORK / name
    if all(p.exists() for p in _parts(path, parts)):
        return {"made": False}
    seconds, rss, _ = _measured([sys.executable, "-m", "ggufkit", "sample", str(path), "-t", type_name, "--format",
                                 fmt, "--size", "7b", "--parts", str(parts), "--force"])
    print(f"  sample {name}: {seconds:.0f} s, peak RSS {rss / 1e6:.0f} MB", flush=True)
    return {"made": True, "seconds": seconds, "peak_rss_mb": rss / 1e6}


def measure(name: str, type_name: str, fmt: str, parts: int) -> dict:
    made = _sample(name, type_name, fmt, parts)
    src = WORK / name
    inputs = _parts(src, parts)
    in_bytes = sum(p.stat().st_size for p in inputs)
    out, copies = WORK / "convert-out.gguf", [WORK / f"cp-out.{k}" for k in range(parts)]
    cp_sync = " && ".join(f"cp '{a}' '{b}'" for a, b in zip(inputs, copies)) + " && sync " + " ".join(f"'{c}'" for c in copies)
    subprocess.run(["cat", *map(str, inputs)], stdout=subprocess.DEVNULL, check=True)  # read once, warm
    conv_t, cps_t, rss = [], [], []
    for _ in range(REPS):
        cps_t.append(_measured(["sh", "-c", cp_sync])[0])
        for c in copies:
            c.unlink()
        out.unlink(missing_ok=True)
        t, peak, _ = _measured([sys.executable, "-m", "ggufkit", "convert", str(src), "-o", str(out), "-q", "--force"])
        conv_t.append(t)
        rss.append(peak)
    inspect_t = min(_measured([sys.executable, "-m", "ggufkit", "inspect", str(out), "--json"])[0] for _ in range(3))
    _, _, text = _measured([sys.executable, "-m", "ggufkit", "run", str(out), "-p", "hello the", "-n", "4", "--temp",
                            "0", "--ctx", "256", "--json"])
    generated = json.loads(text)["generated_tokens"]
    out_bytes = out.stat().st_size
    out.unlink()
    ratio = statistics.median(c / p for c, p in zip(conv_t, cps_t))
    result = {
        "input": name, "parts": parts, "input_bytes": in_bytes, "output_bytes": out_bytes, "repetitions": REPS,
        "cp_sync_seconds": statistics.median(cps_t), "convert_seconds": statistics.median(conv_t),
        "disk_copy_mb_per_s": in_bytes / statistics.median(cps_t) / 1e6,
        "ratio_vs_cp_sync": ratio, "convert_peak_rss_mb": max(rss) / 1e6,
        "inspect_seconds": inspect_t, "run_generated_tokens": generated, "sample": made,
        "all_seconds": {"cp_sync": cps_t, "convert": conv_t}, "load": os.getloadavg(),
        "goal": f"ratio_vs_cp_sync <= {GOAL_RATIO}, peak RSS <= {GOAL_RSS / 1e6:.0f} MB, inspect <= {GOAL_INSPECT} s, "
                f"run generates; sample peak RSS <= {GOAL_SAMPLE_RSS / 1e6:.0f} MB",
    }
    result["met"] = (ratio <= GOAL_RATIO and max(rss) <= GOAL_RSS and inspect_t <= GOAL_INSPECT and generated > 0
                     and (not made["made"] or made["peak_rss_mb"] * 1e6 <= GOAL_SAMPLE_RSS))
    print(f"convert {name} ({in_bytes / 1e9:.1f} GB, {parts} part{'s' * (parts > 1)}): {result['convert_seconds']:.1f} s "
          f"vs cp+sync {result['cp_sync_seconds']:.1f} s ({result['disk_copy_mb_per_s']:.0f} MB/s): {ratio:.2f}x, "
          f"peak RSS {result['convert_peak_rss_mb']:.0f} MB; inspect {inspect_t:.2f} s; run generated {generated} "
          f"[{'met' if result['met'] else 'MISSED'}] (load {result['load'][0]:.1f})", flush=True)
    return result


def main() -> dict:
    _check_disk()
    results = {case[0]: measure(*case) for case in CASES}
    return {**results, "met": all(r["met"] for r in results.values())}


if __name__ == "__main__":
    main()
