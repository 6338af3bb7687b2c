"""What `ggufkit run` spends per generated token beyond llama.cpp's decode (issue 27's 0.05 ms goal).

`python -m benchmarks.run_cost MODEL [RUN FLAGS...]` prints one JSON object. The real CLI runs in this
process with its text going to a pipe (drained by a thread); after the warm-up and the prompt,
llama_decode is swapped for a function that only reads the clocks, so every step of generation costs
exactly what run adds to llama.cpp's own decode: the pick over the (unchanged) logit row, the token's
text, the stop check, the event and the writing. The figure is the main thread's CPU time (thread_time)
from the first such step to the last, per step, over N tokens (loading and teardown fall outside), the
median of three runs: CPU time barely moves with other processes' load, where the tokens/s ratios of
run_bench need a quiet machine. Reading the clocks adds ~0.5 us a step. Wall time is given beside it.
This is a measuring instrument, not a test: nothing of llama.cpp is replaced while run_bench and the tests
compare tokens.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time

N = 2000
CTX = 2304  # room for N tokens after the prompt, a multiple of 256 (llama.cpp would round it up, and say so)


def measure(model: str, extra: list[str]) -> dict:
    import llama_cpp as L

    from ggufkit.cli.app import main

    real = L.llama_decode
    state = {"calls": 0, "steps": 0, "first": (0.0, 0.0), "last": (0.0, 0.0)}

    def step(ctx, batch) -> int:  # noqa: ANN001
        now = (time.thread_time(), time.perf_counter())
        if not state["steps"]:
            state["first"] = now
        state["last"] = now
        state["steps"] += 1
        return 0

    def counting(ctx, batch) -> int:  # noqa: ANN001
        rc = real(ctx, batch)
        state["calls"] += 1
        if state["calls"] == 3:  # the warm-up's two decodes, then the prompt's: generation binds what is here now
            L.llama_decode = step
        return rc

    def once() -> tuple[float, float]:
        state.update(calls=0, steps=0)
        L.llama_decode = counting
        try:
            main(["run", model, "-p", "hello", "--ctx", str(CTX), "--temp", "0", "-t", "1", "-n", str(N), *extra])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        finally:
            L.llama_decode = real
        n = state["steps"] - 1
        assert n > N // 2, f"only {n} steps: generation ended early"
        return ((state["last"][0] - state["first"][0]) / n * 1e6, (state["last"][1] - state["first"][1]) / n * 1e6)

    read, write = os.pipe()

    def drain() -> None:
        while os.read(read, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    saved = os.dup(1)
    os.dup2(write, 1)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    try:
        runs = [once() for _ in range(3)]
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        sys.stdout = os.fdopen(1, "w", closefd=False)
    return {
        "cpu_us_per_token": statistics.median(c for c, _ in runs),
        "wall_us_per_token": statistics.median(w for _, w in runs),
        "cpu_us_runs": [round(c, 2) for c, _ in runs],
        "flags": extra,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2:])))
