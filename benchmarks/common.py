"""What every benchmark needs: a work folder outside the tests, sample models, llama.cpp's own tools."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(os.environ.get("GGUFKIT_BENCH_DIR", "build/bench"))


def sample(name: str, type_name: str, fmt: str = "gguf", size: str = "small") -> Path:
    """A sample model in WORK, made once (in a child, so the benchmark process stays small)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    if not path.exists():
        subprocess.run([sys.executable, "-m", "ggufkit", "sample", str(path), "-t", type_name, "--format", fmt,
                        "--size", size], check=True, stdout=subprocess.DEVNULL)
    return path


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command, measured on that child alone (wait4)."""
    wall, rss, _ = timed_cpu(cmd)
    return wall, rss


def timed_cpu(cmd: list[str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system, its children included: a shell's
    command) of one command: CPU time shows the work itself where other jobs share the machine."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def tools(variant: str = "") -> Path:
    """The bin folder of llama-quantize and llama-bench built from the vendored llama.cpp (llama_tools.sh);
    variant "rpc": llama-bench and rpc-server built with the RPC backend."""
    script = Path(__file__).with_name("llama_tools.sh")
    out = subprocess.run(["bash", str(script), *([variant] if variant else [])], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return Path(out.strip().splitlines()[-1])


def run(cmd: list[str]) -> str:
    """stdout of a command that must succeed."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def real_models() -> list[tuple[str, Path]]:
    """The real models of `make models` (pulled here if missing): label and path."""
    from ggufkit.models import model_path

    return [("SmolLM2-135M-Instruct Q4_1", model_path("smollm2")), ("Gemma 3 270M Q4_K_M", model_path("gemma3-270m"))]
