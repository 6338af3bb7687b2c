"""What `ggufkit run` spends per generated token beyond llama.cpp's decode (issue 27's 0.05 ms goal).

`python -m benchmarks.run_cost MODEL [RUN FLAGS...]` prints one JSON object. The real CLI runs in this
process with its text going to a pipe (drained by a thread); after the warm-up and the prompt,
llama_decode is swapped for a function that does nothing, so every further step costs exactly what run
adds to llama.cpp's own decode: the pick over the (unchanged) logit row, the token's text, the stop
check, the event and the writing. The figure is the main thread's CPU time (thread_time) of `-n 2032`
minus `-n 32`, per token, the smallest of three pairs: CPU time barely moves with other processes' load,
where the tokens/s ratios of run_bench need a quiet machine. Wall time is given beside it.
This is a measuring instrument, not a test: nothing of llama.cpp is replaced while run_bench and the tests
compare tokens.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

SMALL, BIG = 32, 2032


def measure(model: str, extra: list[str]) -> dict:
    import llama_cpp as L

    from ggufkit.cli.app import main

    real, calls = L.llama_decode, [0]

    def nothing(ctx, batch) -> int:  # noqa: ANN001
        return 0

    def counting(ctx, batch) -> int:  # noqa: ANN001
        rc = real(ctx, batch)
        calls[0] += 1
        if calls[0] == 3:  # the warm-up's two decodes, then the prompt's: generation binds what is here now
            L.llama_decode = nothing
        return rc

    def once(n: int) -> tuple[float, float]:
        calls[0] = 0
        L.llama_decode = counting
        t0, w0 = time.thread_time(), time.perf_counter()
        try:
            main(["run", model, "-p", "hello", "--ctx", "4096", "--temp", "0", "-t", "1", "-n", str(n), *extra])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        finally:
            L.llama_decode = real
        return time.thread_time() - t0, time.perf_counter() - w0

    read, write = os.pipe()

    def drain() -> None:
        while os.read(read, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    saved = os.dup(1)
    os.dup2(write, 1)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    try:
        once(4)
        runs = {n: [once(n) for _ in range(3)] for n in (SMALL, BIG)}
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        sys.stdout = os.fdopen(1, "w", closefd=False)
    per = 1e6 / (BIG - SMALL)
    return {
        "cpu_us_per_token": (min(c for c, _ in runs[BIG]) - min(c for c, _ in runs[SMALL])) * per,
        "wall_us_per_token": (min(w for _, w in runs[BIG]) - min(w for _, w in runs[SMALL])) * per,
        "flags": extra,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2:])))
