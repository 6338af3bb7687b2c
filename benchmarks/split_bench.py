"""`ggufkit split`, `merge` and `edit` on SmolLM2-135M-Instruct's F16 base (270 MB), same run as the references.

split and merge against llama.cpp's llama-gguf-split built from the same sources (benchmarks/llama_tools.sh):
every output must be byte for byte llama-gguf-split's (split by size and by tensor count, and merge), and
the time within the goal. edit (one key changed: a new header, the data copied by the kernel) against
`cp` of the same file. ggufkit fsyncs its outputs before renaming them into place and neither reference
does, so each reference is also timed followed by `sync` of its outputs.

Goals (issue 24): split and merge <= 1.2x llama-gguf-split; edit <= 2x cp. CPU seconds (user + system) are
given beside the wall times, and `split --dry-run` (everything but the data: Python's start-up and imports,
reading and checking the header) shows the part of ggufkit's time that does not grow with the model.
    python -m benchmarks.split_bench        (or `make bench`)
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.common import WORK, timed, timed_cpu, tools

REPS = 5
GGUFKIT = [sys.executable, "-m", "ggufkit"]


def _sha(paths: list[Path]) -> list[str]:
    """Hashed in pieces: a file read whole would grow this process, and its children inherit the peak RSS."""
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(hashlib.file_digest(f, "sha256").hexdigest())
    return out


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _synced(cmd: list[str], outputs: str) -> list[str]:
    return ["sh", "-c", f"{' '.join(cmd)} >/dev/null 2>&1 && sync {outputs}"]


def _compare(name: str, ours: list[str], theirs: list[str], out_ours: Path, out_theirs: Path, goal: float,
             sync_glob: str, ref_label: str, identity: bool = True) -> dict:
    """Median times over REPS (the order alternating), byte identity of the outputs, peak RSS of ggufkit."""
    quiet = ["sh", "-c", f"{' '.join(theirs)} >/dev/null 2>&1"]
    runs = {"ours": ours, "theirs": quiet, "synced": _synced(theirs, str(out_theirs / sync_glob))}
    times: dict[str, list[float]] = {label: [] for label in runs}
    cpu: dict[str, list[float]] = {label: [] for label in runs}
    rss = []
    for rep in range(REPS):
        for label in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            _fresh(out_ours if label == "ours" else out_theirs)
            seconds, peak, used = timed_cpu(runs[label])
            times[label].append(seconds)
            cpu[label].append(used)
            if label == "ours":
                rss.append(peak)
    _fresh(out_theirs)
    timed(quiet)
    a, b = sorted(out_ours.iterdir()), sorted(out_theirs.iterdir())
    identical = [p.name for p in a] == [p.name for p in b] and _sha(a) == _sha(b) if identity else None
    med = statistics.median
    ours_s, ref_s, sync_s = (med(times[k]) for k in runs)
    result = {"ggufkit_seconds": ours_s, f"{ref_label}_seconds": ref_s, f"{ref_label}_sync_seconds": sync_s,
              "ratio": ours_s / ref_s, "ratio_vs_sync": ours_s / sync_s,
              "ggufkit_cpu_seconds": med(cpu["ours"]), f"{ref_label}_cpu_seconds": med(cpu["theirs"]),
              "cpu_ratio": med(cpu["ours"]) / max(med(cpu["theirs"]), 1e-9), "files": len(a),
              "byte_identical": identical, "peak_rss_mb": max(rss) / 1e6,
              "goal": f"ratio <= {goal}" + (", byte identical" if identity else "")}
    result["met"] = identical is not False and result["ratio"] <= goal
    same = {True: "byte identical, ", False: "DIFFERENT BYTES, ", None: ""}[identical]
    print(f"{name}: {ours_s:.3f} s vs {ref_label} {ref_s:.3f} s (+sync {sync_s:.3f} s): {result['ratio']:.2f}x, "
          f"{result['ratio_vs_sync']:.2f}x with sync; CPU {med(cpu['ours']):.3f} s vs {med(cpu['theirs']):.3f} s "
          f"({result['cpu_ratio']:.2f}x); {len(a)} file(s), {same}"
          f"peak RSS {result['peak_rss_mb']:.0f} MB [{'met' if result['met'] else 'MISSED'}]")
    return result


def main() -> dict:
    from ggufkit.models import model_path

    src = model_path("smollm2", f16=True)
    split_tool = str(tools() / "llama-gguf-split")
    work = WORK / "split"
    ours_dir, ref_dir = work / "ours", work / "ref"
    results = {
        "split_by_size": _compare(
            "split --max-size 100M", [*GGUFKIT, "split", str(src), "--max-size", "100M", "-o", str(ours_dir / "m"), "-q"],
            [split_tool, "--split", "--split-max-size", "100M", str(src), str(ref_dir / "m")],
            ours_dir, ref_dir, 1.2, "m-*.gguf", "llama_gguf_split"),
        "split_by_tensors": _compare(
            "split --max-tensors 100", [*GGUFKIT, "split", str(src), "--max-tensors", "100", "-o", str(ours_dir / "m"),
                                        "-q"],
            [split_tool, "--split", "--split-max-tensors", "100", str(src), str(ref_dir / "m")],
            ours_dir, ref_dir, 1.2, "m-*.gguf", "llama_gguf_split"),
    }
    # what does not grow with the model: start-up, imports, reading and checking the header, planning
    dry = [timed_cpu([*GGUFKIT, "split", str(src), "--max-size", "100M", "-o", str(ours_dir / "m"), "--dry-run", "-q"])
           for _ in range(REPS)]
    results["split_by_size"]["ggufkit_dry_run_seconds"] = statistics.median(d[0] for d in dry)
    results["split_by_size"]["ggufkit_dry_run_cpu_seconds"] = statistics.median(d[2] for d in dry)
    print(f"split --dry-run (start-up, header, plan; no data): {statistics.median(d[0] for d in dry):.3f} s, "
          f"CPU {statistics.median(d[2] for d in dry):.3f} s")
    shards = work / "shards"
    _fresh(shards)
    timed([split_tool, "--split", "--split-max-size", "100M", str(src), str(shards / "m")])
    first = shards / "m-00001-of-00003.gguf"
    results["merge"] = _compare(
        "merge", [*GGUFKIT, "merge", str(first), "-o", str(ours_dir / "merged.gguf"), "-q"],
        [split_tool, "--merge", str(first), str(ref_dir / "merged.gguf")],
        ours_dir, ref_dir, 1.2, "merged.gguf", "llama_gguf_split")
    results["edit"] = _compare(  # an edit is not a copy: its bytes differ by design
        "edit (one key)", [*GGUFKIT, "edit", str(src), "-o", str(ours_dir / "e.gguf"), "--set", "general.name=bench",
                           "-q"],
        ["cp", str(src), str(ref_dir / "e.gguf")], ours_dir, ref_dir, 2.0, "e.gguf", "cp", identity=False)
    shutil.rmtree(work, ignore_errors=True)
    return {**results, "input_bytes": src.stat().st_size, "met": all(r["met"] for r in results.values())}


if __name__ == "__main__":
    main()
