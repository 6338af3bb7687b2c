"""`ggufkit imatrix` against llama.cpp's llama-imatrix (built from the same sources): same model, text, threads.

Model: SmolLM2-135M's F16 base; text: the first CHUNKS chunks of 512 tokens of the built-in text.
Agreement: the same tensors, identical counts, in_sum2 within 1e-4 relative (and whether the files are
byte-identical); IQ2_XS, IQ3_XXS and Q2_K quantized by ggufkit with its matrix against llama-quantize with
llama-imatrix's (tensor data byte-identical, else the share of differing 256-weight blocks).
Speed: whole-command wall time, interleaved runs (goal >= 0.9x llama-imatrix); peak RSS of each.
Quality: `ggufkit eval` of the IQ2_XS / Q2_K / Q3_K_M children with and without the matrix against the base
(mean KLD, same top token) on the text's second half, which the matrix never saw.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import WORK, tools

CHUNKS = 10
CTX = 512
REPS = 2
EVAL_CHUNKS = 10
TYPES = ("IQ2_XS", "IQ3_XXS", "Q2_K")  # compared with llama-quantize
QUALITY = ("IQ2_XS", "Q2_K", "Q3_K_M")  # evaluated with and without the matrix (IQ2_XS needs one)


def _timed(cmd: list[str]) -> tuple[float, int, float, str]:
    """Wall seconds, peak RSS (bytes), CPU seconds and output of one command (wait4: that child alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{out[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, out


def _texts() -> tuple[Path, Path]:
    """The built-in text (the matrix's first CHUNKS chunks come from its start) and its second half (eval)."""
    from ggufkit.evaluate.text import load_text

    WORK.mkdir(parents=True, exist_ok=True)
    text, held_out = WORK / "imatrix-text.txt", WORK / "imatrix-eval-text.txt"
    if not held_out.exists():
        body = load_text(None)[0]
        text.write_text(body)
        held_out.write_text(body[len(body) // 2:])
    return text, held_out


def compare(ours: Path, theirs: Path) -> dict:
    from ggufkit.imatrix.files import read_matrix

    a, b = read_matrix(ours), read_matrix(theirs)
    same_counts = sorted(a.entries) == sorted(b.entries) and all(
        np.array_equal(a.entries[k].counts, b.entries[k].counts) for k in a.entries)
    rel = [np.abs(a.entries[k].sums.astype(np.float64) - b.entries[k].sums) / np.maximum(np.abs(b.entries[k].sums), 1e-30)
           for k in a.entries if k in b.entries]
    every = np.concatenate(rel) if rel else np.array([np.inf])
    return {"tensors": len(a.entries), "same_tensors_and_counts": same_counts,
            "in_sum2_max_rel_diff": float(every.max()), "in_sum2_p99_rel_diff": float(np.percentile(every, 99)),
            "byte_identical": ours.read_bytes() == theirs.read_bytes()}


def _block_diff(ours: Path, theirs: Path) -> float:
    """Share of 256-weight super-blocks (or smaller blocks) whose bytes differ, over every tensor."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    from ggufkit.formats.gguf_file import read_gguf

    a, b = read_gguf(ours), read_gguf(theirs)
    da, db = ours.read_bytes(), theirs.read_bytes()
    differ = total = 0
    for ta, tb in zip(a.tensors, b.tensors):
        if (ta.name, ta.ggml_type, ta.nbytes) != (tb.name, tb.ggml_type, tb.nbytes):
            return 1.0
        size = GGML_QUANT_SIZES[GGMLQuantizationType(ta.ggml_type)][1]
        x, y = da[ta.offset:ta.offset + ta.nbytes], db[tb.offset:tb.offset + tb.nbytes]
        n = ta.nbytes // size
        total += n
        if x != y:
            differ += sum(x[i * size:(i + 1) * size] != y[i * size:(i + 1) * size] for i in range(n))
    return differ / total if total else 0.0


def main() -> dict:
    from ggufkit.models import model_path

    bin_dir = tools()
    model = model_path("smollm2", f16=True)
    text, held_out = _texts()
    threads = str(os.cpu_count() or 1)
    ours_m, theirs_m = WORK / "imatrix-ours.gguf", WORK / "imatrix-llama.gguf"
    ours = [sys.executable, "-m", "ggufkit", "imatrix", model, "-f", text, "--chunks", CHUNKS, "--ctx", CTX,
            "-t", threads, "-o", ours_m, "--force", "-q"]
    # both compute the running perplexity too: the same work
    theirs = [bin_dir / "llama-imatrix", "-m", model, "-f", text, "--chunks", CHUNKS, "-c", CTX, "-t", threads,
              "-o", theirs_m]
    runs: dict[str, list[tuple[float, int, float]]] = {"ours": [], "theirs": []}
    for _ in range(REPS):  # interleaved: a change in the machine's load hits both alike
        runs["theirs"].append(_timed(theirs)[:3])
        runs["ours"].append(_timed(ours)[:3])
    wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    rss = {k: max(r[1] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r[2] for r in v) for k, v in runs.items()}
    result = {"model": model.name, "chunks": CHUNKS, "ctx": CTX, "threads": int(threads), **compare(ours_m, theirs_m),
              "seconds_llama": wall["theirs"], "seconds_ours": wall["ours"], "speed_ratio": wall["theirs"] / wall["ours"],
              "tokens_per_second_llama": CHUNKS * CTX / wall["theirs"], "tokens_per_second_ours": CHUNKS * CTX / wall["ours"],
              "cpu_ratio": cpu["theirs"] / cpu["ours"], "peak_rss_mb_llama": rss["theirs"] / 1e6,
              "peak_rss_mb_ours": rss["ours"] / 1e6, "load": os.getloadavg()[0]}
    result["quantized_blocks_differing"] = _quantize(bin_dir, model, ours_m, theirs_m, threads)
    result["quality"] = _quality(model, ours_m, held_out, threads)
    result["goal"] = ("same tensors, identical counts, in_sum2 within 1e-4; quantized outputs identical; "
                      "speed >= 0.9x llama-imatrix")
    result["met"] = (result["same_tensors_and_counts"] and result["in_sum2_max_rel_diff"] <= 1e-4
                     and not any(result["quantized_blocks_differing"].values()) and result["speed_ratio"] >= 0.9)
    q = result["quality"]
    print(f"imatrix {model.name}, {CHUNKS}x{CTX} tokens, {threads} threads: matrix "
          f"{'byte-identical' if result['byte_identical'] else 'differs'} (max rel diff {result['in_sum2_max_rel_diff']:.2e},"
          f" counts {'identical' if result['same_tensors_and_counts'] else 'DIFFER'}); "
          f"{result['tokens_per_second_ours']:.0f} vs {result['tokens_per_second_llama']:.0f} tokens/s "
          f"({result['speed_ratio']:.2f}x, CPU {result['cpu_ratio']:.2f}x); peak RSS {result['peak_rss_mb_ours']:.0f} MB vs "
          f"{result['peak_rss_mb_llama']:.0f} MB; quantized blocks differing "
          f"{ {k: round(v, 6) for k, v in result['quantized_blocks_differing'].items()} }; load {result['load']:.1f} "
          f"[{'met' if result['met'] else 'MISSED'}]")
    for row in q:
        print(f"  {row['type']:<7} without: KLD {row['kld_without'] if row['kld_without'] is not None else '-'}"
              f"  with: KLD {row['kld_with']:.6f}, same top {100 * row['same_top_with']:.2f} %")
    return result


def _quantize(bin_dir: Path, model: Path, ours_m: Path, theirs_m: Path, threads: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for qtype in TYPES:
        a, b = WORK / f"imatrix-q-ours-{qtype}.gguf", WORK / f"imatrix-q-llama-{qtype}.gguf"
        _timed([sys.executable, "-m", "ggufkit", "quantize", model, "-t", qtype, "--imatrix", ours_m, "-o", a,
                "--threads", threads, "--force", "-q"])
        _timed([bin_dir / "llama-quantize", "--imatrix", theirs_m, model, b, qtype, threads])
        out[qtype] = _block_diff(a, b)
    return out


def _quality(model: Path, matrix: Path, held_out: Path, threads: str) -> list[dict]:
    children: list[tuple[str, bool, Path]] = []
    for qtype in QUALITY:
        for with_matrix in (False, True):
            if qtype == "IQ2_XS" and not with_matrix:
                continue  # llama.cpp refuses IQ2_XS without a matrix
            path = WORK / f"imatrix-eval-{qtype}{'-im' if with_matrix else ''}.gguf"
            _timed([sys.executable, "-m", "ggufkit", "quantize", model, "-t", qtype, "-o", path, "--force", "-q",
                    "--threads", threads, *(["--imatrix", matrix] if with_matrix else [])])
            children.append((qtype, with_matrix, path))
    _, _, _, out = _timed([sys.executable, "-m", "ggufkit", "eval", model, *[c[2] for c in children], "-f", held_out,
                           "--chunks", EVAL_CHUNKS, "-t", threads, "--json", "-q"])
    models = json.loads(out)["models"][1:]
    rows = []
    for qtype in QUALITY:
        got = {w: m["vs_base"] for (t, w, _), m in zip(children, models) if t == qtype}
        rows.append({"type": qtype, "kld_without": got[False]["kld_mean"] if False in got else None,
                     "same_top_without": got[False]["same_top"] if False in got else None,
                     "kld_with": got[True]["kld_mean"], "same_top_with": got[True]["same_top"],
                     "bits_per_weight": next(m["bits_per_weight"] for (t, w, _), m in zip(children, models)
                                             if t == qtype and w)})
    return rows


if __name__ == "__main__":
    main()
