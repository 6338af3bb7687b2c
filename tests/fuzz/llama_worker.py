"""A long-lived llama.cpp process for the fuzz harness: loads each file it is sent and decodes a few tokens.

One line in (a path), one line out: "ok", or "refused <llama.cpp's last error line>". If a file makes
llama.cpp crash, this process dies; the harness notices, judges that file through the real CLI, and
starts another worker. Loading in one process is ~50x faster than starting the CLI for every mutant.
"""

from __future__ import annotations

import sys


def main() -> None:
    import llama_cpp

    from ggufkit.runtime import llama_log

    errors: list[str] = []
    llama_log.route(lambda level, line: errors.append(line) if level == 4 or "error" in line else None)
    llama_cpp.llama_backend_init()
    for line in sys.stdin:
        path = line.strip()
        errors.clear()
        mp = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
        if not model:
            print("refused", (errors[0] if errors else "").strip()[:200], flush=True)
            continue
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_threads, cp.n_threads_batch = 64, 64, 1, 1
        ctx = llama_cpp.llama_init_from_model(model, cp)
        if not ctx:
            llama_cpp.llama_model_free(model)
            print("refused", (errors[-1] if errors else "context").strip()[:200], flush=True)
            continue
        tokens = (llama_cpp.llama_token * 4)(1, 2, 3, 4)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(tokens, 4))
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
        print("ok" if rc == 0 else f"refused decode {rc}", flush=True)


if __name__ == "__main__":
    main()
