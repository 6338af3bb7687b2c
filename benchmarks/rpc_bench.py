"""Generation over loopback RPC against local generation, same model and threads, and llama-bench --rpc as the
reference.

One `ggufkit rpc-server` on 127.0.0.1 (llama.cpp's server code run in-process). `ggufkit bench --gpu both --rpc`
gives, in one run, a local CPU row and a row with every layer on the server: their tg ratio and the added cost
per token (the round trips: llama.cpp sends each token's graph and reads the logits back). The reference is
llama-bench built with -DGGML_RPC=ON (`llama_tools.sh rpc`) against the same server, and, to see whether
running the server inside ggufkit costs anything, against llama.cpp's own rpc-server program too.

Goal: ggufkit's RPC tg within 5 % of llama-bench --rpc's. GGUFKIT_BENCH_THREADS, GGUFKIT_BENCH_REPS as the
other benchmarks; GGUFKIT_BENCH_RPC_REFERENCE=0 skips the llama-bench build and runs (several minutes the
first time).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import WORK, run, sample, tools

N_GEN = 128
REPS = int(os.environ.get("GGUFKIT_BENCH_REPS", "3"))
GOAL = 0.05


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(cmd: list[str], port: int) -> Iterator[str]:
    """A server process on 127.0.0.1:port, stopped whatever happens."""
    from ggufkit.runtime.rpc import Endpoint, RpcError, probe

    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / f"rpc-server-{port}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        ep, deadline = Endpoint("127.0.0.1", port), time.monotonic() + 60
        while True:
            try:
                probe(ep, timeout=2)
                break
            except RpcError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"rpc server did not start: {' '.join(cmd)}") from None
                time.sleep(0.2)
        yield str(ep)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def ggufkit_rows(model: Path, endpoint: str, threads: int) -> tuple[float, float]:
    """(local CPU tg t/s, RPC tg t/s) from one `ggufkit bench --gpu both --rpc` run."""
    out = run([sys.executable, "-m", "ggufkit", "bench", str(model), "-p", "0", "-n", str(N_GEN), "-r", str(REPS),
               "-t", str(threads), "--gpu", "both", "--rpc", endpoint, "--format", "json", "-q"])
    rows = json.loads(out)["rows"]
    by = {r["backend"]: r for r in rows}
    if any(r["error"] for r in rows) or set(by) != {"CPU", "RPC"}:
        raise SystemExit(f"ggufkit bench --rpc rows: {rows}")
    return by["CPU"]["tg_tps"], by["RPC"]["tg_tps"]


def llama_bench_tg(bin_dir: Path, model: Path, threads: int, endpoint: str | None) -> float:
    rpc = ["-ngl", "99", "--rpc", endpoint] if endpoint else ["-ngl", "0"]
    out = run([str(bin_dir / "llama-bench"), "-m", str(model), "-p", "0", "-n", str(N_GEN), "-t", str(threads),
               "-r", str(REPS), "-o", "json", *rpc])
    (row,) = [r for r in json.loads(out) if r.get("n_gen") == N_GEN]
    return float(row["avg_ts"])


def main() -> dict:
    model = sample("small-q4_k_m.gguf", "q4_k_m")
    threads = int(os.environ.get("GGUFKIT_BENCH_THREADS", "0")) or os.cpu_count() or 1
    reference = os.environ.get("GGUFKIT_BENCH_RPC_REFERENCE", "1") != "0"
    bin_dir = tools("rpc") if reference else None
    ours_port = _free_port()
    ours_cmd = [sys.executable, "-m", "ggufkit", "rpc-server", "--port", str(ours_port), "-t", str(threads)]
    local, remote, ref_local, ref_remote, ref_program = [], [], [], [], []
    with server(ours_cmd, ours_port) as ep:
        for _ in range(2 if reference else 3):  # alternate, so load from other processes hits both sides
            cpu, rpc = ggufkit_rows(model, ep, threads)
            local.append(cpu)
            remote.append(rpc)
            if bin_dir is not None:
                ref_local.append(llama_bench_tg(bin_dir, model, threads, None))
                ref_remote.append(llama_bench_tg(bin_dir, model, threads, ep))
    ours_program: list[float] = []
    if bin_dir is not None:  # the same clients against llama.cpp's rpc-server program
        port = _free_port()
        with server([str(bin_dir / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)], port) as ep:
            for _ in range(2):
                ours_program.append(ggufkit_rows(model, ep, threads)[1])
                ref_program.append(llama_bench_tg(bin_dir, model, threads, ep))
    med = statistics.median
    result: dict = {
        "model_bytes": model.stat().st_size, "threads": threads, "n_gen": N_GEN, "repetitions": REPS,
        "ggufkit_local_tg_tps": med(local), "ggufkit_rpc_tg_tps": med(remote),
        "rpc_over_local": med(remote) / med(local),
        "rpc_cost_ms_per_token": 1000 / med(remote) - 1000 / med(local),
        "runs": {"local": local, "rpc": remote},
    }
    line = (f"tg{N_GEN} small Q4_K_M, {threads} threads: local {med(local):.1f} t/s, loopback RPC {med(remote):.1f} t/s "
            f"({result['rpc_over_local']:.2f}x, +{result['rpc_cost_ms_per_token']:.2f} ms/token)")
    if ref_remote:
        result |= {
            "llama_bench_local_tg_tps": med(ref_local), "llama_bench_rpc_tg_tps": med(ref_remote),
            "llama_bench_rpc_program_server_tg_tps": med(ref_program),
            "ggufkit_rpc_program_server_tg_tps": med(ours_program),
            "ggufkit_vs_llama_bench_rpc": med(remote) / med(ref_remote),
            # the server inside ggufkit against llama.cpp's program, each client on both
            "in_process_vs_program_server": statistics.fmean([med(ref_remote) / med(ref_program),
                                                              med(remote) / med(ours_program)]),
            "goal": f"|ggufkit / llama-bench --rpc - 1| <= {GOAL:.0%}",
        }
        result["met"] = abs(result["ggufkit_vs_llama_bench_rpc"] - 1) <= GOAL
        line += (f"; llama-bench local {med(ref_local):.1f}, --rpc {med(ref_remote):.1f} t/s (ggufkit "
                 f"{result['ggufkit_vs_llama_bench_rpc']:.3f}x) [{'met' if result['met'] else 'MISSED'}]; "
                 f"llama-bench --rpc to the rpc-server program {med(ref_program):.1f} t/s (in-process server "
                 f"{result['in_process_vs_program_server']:.3f}x)")
    print(line)
    return result


if __name__ == "__main__":
    main()
