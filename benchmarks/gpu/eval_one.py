"""`eval -ngl all` of one model against `llama-perplexity -ngl 99` on the GPU machine: PPL and wall time,
interleaved REPS_EVAL times (default 3): the ratio of each pair, and their median.
Usage: eval_one.py LLAMA_BIN_DIR MODEL TEXT THREADS CHUNKS; prints one JSON document."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_gpu import PPL, grab, timed, timed_until  # noqa: E402


def main() -> None:
    bin_dir, model, text, threads, chunks = sys.argv[1:6]
    common = ["-f", text, "-c", "512", "-b", "512", "--chunks", chunks, "-t", threads]
    reps = []
    for _ in range(int(os.environ.get("REPS_EVAL", "3"))):
        t_llama, out = timed_until([str(Path(bin_dir) / "llama-perplexity"), "-m", model, *common, "-ngl", "99"], PPL)
        t_ours, doc = timed([sys.executable, "-m", "ggufkit", "eval", model, *common[:2], "--ctx", "512", "--chunks",
                             chunks, "-t", threads, "-ngl", "all", "--json", "-q"])
        ours = json.loads(doc[:doc.rindex("}") + 1])
        reps.append({"seconds_llama": t_llama, "seconds_ours": t_ours, "ratio": t_llama / t_ours,
                     "ppl": [grab(PPL, out), ours["models"][0]["ppl"]],
                     "tokens_per_second_ours": ours["models"][0]["tokens_per_second"]})
    print(json.dumps({"model": Path(model).name, "chunks": int(chunks), "runs": reps,
                      "median_ratio": statistics.median(r["ratio"] for r in reps),
                      "goal": ">= 0.95x llama-perplexity -ngl 99"}, indent=1))


if __name__ == "__main__":
    main()
