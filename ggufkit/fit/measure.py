"""The figures of a candidate: memory and speed in a fresh process, quality in one pass over them all.

Memory and speed: `bench`'s own child (bench/child.py), one per candidate, started by exec so its peak
resident memory (VmHWM) is that candidate's alone: it loads the file at --ctx, processes a prompt
and generates, as llama-bench times them. With layers offloaded it also reports the GPU memory it
took (bench/gpu.py). Quality: `eval` (evaluate/perplexity.py) scores every candidate against the
source on the text in one pass: PPL, mean and 99th-percentile KL-divergence, same top token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError, LlamaFailure

BENCH_CHILD = "ggufkit.bench.child"
N_PROMPT = 512  # llama-bench's default pp test, at most --ctx
N_GEN = 64  # generated tokens per timed run


@dataclass(frozen=True)
class Settings:
    ctx: int
    threads: int | None  # None: one per free CPU, decided when each child starts
    gpu_layers: int  # -1: all
    repetitions: int

    @property
    def n_prompt(self) -> int:
        return min(N_PROMPT, self.ctx)

    @property
    def n_gen(self) -> int:
        return min(N_GEN, self.ctx)

    def speed_key(self) -> dict[str, Any]:
        """What memory and speed depend on besides the file and the machine."""
        return {"ctx": self.ctx, "threads": self.threads or "auto", "ngl": self.gpu_layers,
                "reps": self.repetitions, "pp": self.n_prompt, "tg": self.n_gen}


def speed_and_memory(path: Path, s: Settings, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One fresh child's figures: peak_memory_bytes, gpu_memory_bytes, gpu_buffers_bytes, pp_tps, tg_tps."""
    from ggufkit.runtime.child import run_child
    from ggufkit.runtime.cpuload import measured_free
    from ggufkit.runtime.settings import default_threads

    request = {"path": str(path), "n_ctx": s.ctx, "threads": s.threads or default_threads(), "batch": N_PROMPT,
               "gpu_layers": s.gpu_layers, "mmap": True, "n_prompt": s.n_prompt, "n_gen": s.n_gen,
               "reps": s.repetitions, "rpc": [], "tensor_split": None, "free_cpus": measured_free()}

    def on_event(event: dict[str, Any]) -> None:
        if on_stage is not None and event.get("event") == "progress":
            rep = f" {event['rep']}/{event['reps']}" if event.get("reps") else ""
            on_stage(f"{event.get('stage', '')}{rep}")

    result = run_child(BENCH_CHILD, request, on_event, str(path))
    return {"peak_memory_bytes": result["peak_rss_bytes"], "gpu_memory_bytes": result.get("gpu_memory_bytes"),
            "gpu_buffers_bytes": result.get("gpu_buffers_bytes"),
            "pp_tps": result["pp"]["mean"], "tg_tps": result["tg"]["mean"], "size_bytes": path.stat().st_size}


@dataclass
class Quality:
    figures: list[dict[str, Any] | None]  # per candidate, in order: ppl, mean_kld, kld_p99, same_top (None: not scored)
    base_ppl: float
    chunks: int
    partial: bool  # interrupted: figures from the chunks scored so far


MODEL_OVERHEAD = 256 << 20  # per open model beyond its file: its context, logits and compute buffers


def quality(base: Path, paths: list[Path], text: str, text_name: str, s: Settings, chunks: int,
            on_notice: Callable[[str], None] | None = None,
            on_chunk: Callable[[int, int], None] | None = None) -> Quality:
    """`eval` of the base and every candidate in one pass over the text; in as few passes as keep the
    models open at once within half the memory available (each pass decodes the base again)."""
    from ggufkit.evaluate.perplexity import evaluate
    from ggufkit.runtime.params import LoadParams
    from ggufkit.runtime.settings import default_threads

    load = LoadParams(base, n_threads=s.threads or default_threads(), n_gpu_layers=s.gpu_layers)
    runs = groups(base.stat().st_size, [p.stat().st_size for p in paths], available_memory() // 2)
    figures: list[dict[str, Any] | None] = [None] * len(paths)
    result = Quality(figures, float("nan"), 0, False)
    for k, run in enumerate(runs):
        progress = None if on_chunk is None else (lambda d, n, k=k: on_chunk(k * n + d, len(runs) * n))
        r = evaluate([base, *(paths[i] for i in run)], text, text_name, s.ctx, chunks, load, on_notice, progress)
        for i, m in zip(run, r.models[1:]):
            v = m.vs_base or {}
            figures[i] = {"ppl": m.ppl, "mean_kld": v.get("kld_mean"), "kld_p99": v.get("kld_p99"),
                          "same_top": v.get("same_top")}
        result.base_ppl, result.chunks, result.partial = r.models[0].ppl, r.chunks, r.partial
        if r.partial:
            break
    return result


def groups(base_bytes: int, sizes: list[int], budget: int) -> list[list[int]]:
    """The candidates' indices in runs whose files, with the base's, fit `budget` (at least one per run)."""
    runs: list[list[int]] = []
    used = 0
    for i, n in enumerate(sizes):
        if not runs or used + n + MODEL_OVERHEAD > budget:
            runs.append([])
            used = base_bytes + MODEL_OVERHEAD
        runs[-1].append(i)
        used += n + MODEL_OVERHEAD
    return runs


def available_memory() -> int:
    """MemAvailable (Linux), else the machine's RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_text(gguf: Path, text: str, ctx: int) -> None:
    """Before any work: the text holds the two chunks `eval` needs at least (its vocabulary alone loaded)."""
    import llama_cpp as L

    from ggufkit.runtime import llama_log

    llama_log.ensure_installed()  # llama.cpp's log stays off the terminal
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(str(gguf).encode(), mp)
    if not model:
        raise LlamaFailure("llama.cpp could not read the model's vocabulary", gguf)
    try:
        data = text.encode("utf-8")
        n = L.llama_tokenize(L.llama_model_get_vocab(model), data, len(data), None, 0, True, False)
    finally:
        L.llama_model_free(model)
    if abs(n) < 2 * ctx:  # a buffer of 0 tokens: -n is the count
        raise BadInputError(f"the text has {abs(n)} tokens; a context of {ctx} needs at least {2 * ctx} (two chunks):"
                            " give a longer text or a smaller --ctx")
