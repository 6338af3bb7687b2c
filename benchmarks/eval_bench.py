"""`ggufkit eval` against llama.cpp's llama-perplexity (built from the same sources), same model, text, run.

Agreement: the base's perplexity within 0.5 % and a quantized model's mean KL-divergence within 2 %
(relative) of llama-perplexity's (`--kl-divergence-base` then `--kl-divergence`).
Speed: eval of one model against llama-perplexity's run of it on the same chunks, and eval's one pass over
the base and its child against llama-perplexity's two runs (the base with --kl-divergence-base, then the
child); goal >= 0.9x for both.
Memory: eval's peak RSS beyond `run`'s with the same model loaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import WORK, sample, tools

CHUNKS = 8
CTX = 512


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and output of one command (wait4: that child alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{out[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024, out


def _text() -> Path:
    from ggufkit.evaluate.text import load_text

    path = WORK / "eval-text.txt"
    if not path.exists():
        path.write_text(load_text(None)[0])
    return path


def main() -> dict:
    import json

    bin_dir = tools()
    base = sample("small-f16.gguf", "f16")
    quant = sample("small-q4_k_m.gguf", "q4_k_m")
    text = _text()
    threads = str(os.cpu_count() or 1)
    common = ["-c", str(CTX), "-b", str(CTX), "--chunks", str(CHUNKS), "-t", threads]
    with tempfile.TemporaryDirectory(dir=WORK) as work:
        kld_file = Path(work) / "base.kld"
        t_llama, _, out = _timed([str(bin_dir / "llama-perplexity"), "-m", str(base), "-f", str(text), *common,
                                  "--kl-divergence-base", str(kld_file)])
        ppl_llama = float(re.search(r"Final estimate: PPL = ([\d.]+)", out)[1])
        t_llama_child, _, out = _timed([str(bin_dir / "llama-perplexity"), "-m", str(quant), "--kl-divergence-base",
                                        str(kld_file), "--kl-divergence", *common])
        kld_llama = float(re.search(r"Mean\s+KLD:\s+([\d.]+)", out)[1])
    eval_cmd = [sys.executable, "-m", "ggufkit", "eval", "--ctx", str(CTX), "--chunks", str(CHUNKS), "-t", threads,
                "-f", str(text), "--json", "-q"]
    t_ours, rss_one, out = _timed([*eval_cmd, str(base)])
    ppl_ours = json.loads(out)["models"][0]["ppl"]
    t_two, rss_two, out = _timed([*eval_cmd, str(base), str(quant)])
    kld_ours = json.loads(out)["models"][1]["vs_base"]["kld_mean"]
    _, rss_run, _ = _timed([sys.executable, "-m", "ggufkit", "run", str(base), "-p", "hi", "-n", "1", "-t", threads,
                            "--ctx", str(CTX)])
    result = {
        "model": base.name, "compared": quant.name, "chunks": CHUNKS, "ctx": CTX,
        "ppl_llama": ppl_llama, "ppl_ours": ppl_ours, "ppl_rel_diff": abs(ppl_ours / ppl_llama - 1),
        "kld_llama": kld_llama, "kld_ours": kld_ours, "kld_rel_diff": abs(kld_ours / kld_llama - 1),
        "seconds_llama": t_llama, "seconds_ours": t_ours, "speed_ratio": t_llama / t_ours,
        "seconds_llama_two_runs": t_llama + t_llama_child, "seconds_ours_two_models": t_two,
        "speed_ratio_two_models": (t_llama + t_llama_child) / t_two,
        "peak_rss_mb_one_model": rss_one / 1e6, "peak_rss_mb_run": rss_run / 1e6,
        "peak_rss_mb_two_models": rss_two / 1e6,
        "goal": "PPL within 0.5 %, KLD within 2 %, speed >= 0.9x llama-perplexity",
    }
    result["met"] = (result["ppl_rel_diff"] <= 0.005 and result["kld_rel_diff"] <= 0.02 and result["speed_ratio"] >= 0.9
                     and result["speed_ratio_two_models"] >= 0.9)
    print(f"eval {base.name}: PPL {ppl_ours:.4f} vs llama-perplexity {ppl_llama:.4f} "
          f"({100 * result['ppl_rel_diff']:.3f} %); KLD of {quant.name} {kld_ours:.6f} vs {kld_llama:.6f} "
          f"({100 * result['kld_rel_diff']:.2f} %); {CHUNKS}x{CTX} tokens in {t_ours:.2f} s vs {t_llama:.2f} s "
          f"({result['speed_ratio']:.2f}x); base + child in one pass {t_two:.2f} s vs two runs "
          f"{t_llama + t_llama_child:.2f} s ({result['speed_ratio_two_models']:.2f}x); peak RSS {rss_one / 1e6:.0f} MB (run: {rss_run / 1e6:.0f} MB, "
          f"two models: {rss_two / 1e6:.0f} MB) [{'met' if result['met'] else 'MISSED'}]")
    return result


if __name__ == "__main__":
    main()
