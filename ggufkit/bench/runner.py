"""`run_bench`: every configuration of every model, each measured in a fresh child process.

The models are validated (and legacy GGJT v3 converted) up front, so bad input stops the run before any
measurement; a configuration that llama.cpp refuses or dies on becomes an error row and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.bench.options import BenchOptions, Config, expand
from ggufkit.bench.results import BenchRun, Row
from ggufkit.errors import GgufkitError
from ggufkit.system import Build, llama_build, machine, software
from ggufkit.units import MIB


@dataclass
class ModelInfo:
    model: str  # the file name, what a baseline matches on
    path: str  # as the user gave it
    gguf: Path  # what llama.cpp opens (a cached conversion for GGJT v3)
    architecture: str | None
    file_type: str | None
    size_bytes: int
    parameters: int


@dataclass
class Progress:
    index: int  # 1-based configuration number
    total: int
    label: str
    stage: str  # "load", "pp warm-up", "pp", "tg warm-up", "tg", "done", "failed"
    rep: int = 0
    reps: int = 0


def inspect_models(paths: list[Path], on_notice: Callable[[str], None] | None = None) -> list[ModelInfo]:
    from ggufkit.formats.summary import summarize_model
    from ggufkit.runtime.prepare import prepare_model

    infos = []
    for p in paths:
        prepared = prepare_model(p, on_notice)
        s = summarize_model(prepared.gguf)
        infos.append(ModelInfo(p.name, str(p), prepared.path, s.architecture, s.file_type, s.file_size, s.parameters))
    return infos


def run_bench(opts: BenchOptions, on_progress: Callable[[Progress], None] | None = None,
              on_notice: Callable[[str], None] | None = None, build: Build | None = None) -> BenchRun:
    opts.check()
    build = build or llama_build()
    configs, gpu_notice = expand(opts, build.gpu_offload)
    models = inspect_models(opts.models, on_notice)
    if gpu_notice and on_notice is not None:
        on_notice(gpu_notice)
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    rows = []
    for i, cfg in enumerate(configs, 1):
        row = _row(models[cfg.model_index], cfg, opts, build)
        report = (lambda stage, rep=0, reps=0, i=i, label=row.label():
                  on_progress(Progress(i, len(configs), label, stage, rep, reps)) if on_progress else None)
        _measure(row, models[cfg.model_index], cfg, opts, report)
        report("failed" if row.error else "done")
        rows.append(row)
    settings = {"n_prompt": opts.n_prompt, "n_gen": opts.n_gen, "repetitions": opts.repetitions, "mmap": opts.mmap,
                "gpu": opts.gpu, "gpu_layers": opts.gpu_layers, "threads": opts.threads, "batch": opts.batch,
                "ctx": opts.ctx, **({"rpc": opts.rpc, "tensor_split": opts.tensor_split} if opts.rpc else {})}
    return BenchRun(machine(build), software(build), settings, rows, started, time.perf_counter() - t0)


def _row(m: ModelInfo, cfg: Config, opts: BenchOptions, build: Build) -> Row:
    rpc = opts.rpc if cfg.gpu_layers != 0 else []
    backend = "CPU" if cfg.gpu_layers == 0 else build.gpu_backend
    if rpc:  # llama-bench's naming: the local GPU backends, then RPC
        backend = f"{backend},RPC" if build.gpu_offload else "RPC"
    return Row(
        model=m.model, path=m.path, architecture=m.architecture, file_type=m.file_type, size_bytes=m.size_bytes,
        parameters=m.parameters, backend=backend,
        gpu_layers=cfg.gpu_layers, mmap=cfg.mmap, threads=cfg.threads, batch=cfg.batch, ctx=opts.ctx,
        n_prompt=opts.n_prompt, n_gen=opts.n_gen, repetitions=opts.repetitions, rpc_servers=list(rpc),
    )


def _measure(row: Row, m: ModelInfo, cfg: Config, opts: BenchOptions, report: Callable[..., None]) -> None:
    from ggufkit.runtime.child import run_child
    from ggufkit.runtime.cpuload import measured_free

    request = {"path": str(m.gguf), "n_ctx": opts.ctx, "threads": cfg.threads, "batch": cfg.batch,
               "gpu_layers": cfg.gpu_layers, "mmap": cfg.mmap, "n_prompt": opts.n_prompt, "n_gen": opts.n_gen,
               "reps": opts.repetitions, "rpc": row.rpc_servers,
               "tensor_split": opts.tensor_split if row.rpc_servers else None, "free_cpus": measured_free()}

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "progress":
            report(event.get("stage", ""), event.get("rep", 0), event.get("reps", 0))

    try:
        result = run_child("ggufkit.bench.child", request, on_event, m.path)
    except GgufkitError as e:
        row.error = e.message
        return
    row.load_ms = round(result["load_ms"], 2)
    row.peak_rss_mib = round(result["peak_rss_bytes"] / MIB, 1)
    for name in ("pp", "tg"):
        if name in result:
            speed = result[name]
            setattr(row, f"{name}_tps", speed["mean"])
            setattr(row, f"{name}_sd", speed["sd"])
            setattr(row, f"{name}_samples_ns", speed["samples_ns"])
