"""What every benchmark needs: a work folder outside the tests, sample models, llama.cpp's own tools."""

from __future__ import annotations

import os
import subprocess
import sys
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
