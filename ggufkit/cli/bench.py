"""`ggufkit bench`: tokens/s like llama-bench, plus load time and peak memory, over a matrix of settings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.bench.options import BenchFormat, BenchOptions as D, GpuRows, Switch
from ggufkit.cli.common import ChoiceType, ForceOpt, QuietOpt
from ggufkit.cli.output import notice
from ggufkit.errors import EXIT_FAILURE, EXIT_REGRESSION, BadInputError
from ggufkit.runtime.settings import RunSettings

_MATRIX = "Matrix (lists run every combination)"
_CI = "CI gate"
_SUFFIX_FORMATS = {".json": BenchFormat.JSON, ".jsonl": BenchFormat.JSONL, ".csv": BenchFormat.CSV, ".md": BenchFormat.MD}


def bench(
    models: Annotated[list[Path], typer.Argument(help="Model files (GGUF, or a legacy GGML/GGMF/GGJT file: converted once into a cache).", show_default=False)],
    n_prompt: Annotated[int, typer.Option("--n-prompt", "-p", help="Prompt tokens of the pp test (0 skips it).")] = D.n_prompt,
    n_gen: Annotated[int, typer.Option("--n-gen", "-n", help="Generated tokens of the tg test (0 skips it).")] = D.n_gen,
    repetitions: Annotated[int, typer.Option("--repetitions", "-r", help="Timed runs per test, after one warm-up.")] = D.repetitions,
    mmap: Annotated[Switch, typer.Option("--mmap", click_type=ChoiceType(Switch), help="Memory-map the file (both: a row each way).", rich_help_panel=_MATRIX)] = D.mmap,
    gpu: Annotated[GpuRows, typer.Option("--gpu", click_type=ChoiceType(GpuRows), help="Offload to the GPU (auto: on when the build has a GPU backend).", rich_help_panel=_MATRIX)] = D.gpu,
    gpu_layers: Annotated[Optional[str], typer.Option("--gpu-layers", "-ngl", help="Layers the GPU rows offload: N or 'all' (as run). Default: all.", show_default=False, rich_help_panel=_MATRIX)] = None,
    threads: Annotated[Optional[str], typer.Option("--threads", "-t", help="Thread counts, e.g. 1,2,4. Default: one per CPU that others leave free (all on an idle machine).", show_default=False, rich_help_panel=_MATRIX)] = None,
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes for prompt processing, e.g. 256,512.", rich_help_panel=_MATRIX)] = str(RunSettings.batch),
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="The offloaded rows run on llama.cpp RPC servers HOST:PORT[,...] (`ggufkit rpc-server`), then local GPUs; --gpu both adds a local CPU row to compare.", show_default=False, rich_help_panel=_MATRIX)] = None,
    tensor_split: Annotated[Optional[str], typer.Option("--tensor-split", "-ts", help="The offloaded rows' split over the servers' devices, then local GPUs (e.g. 1,1).", show_default=False, rich_help_panel=_MATRIX)] = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Context size (0 = one per test, sized to it: -p for pp, -n for tg, as llama-bench).", rich_help_panel=_MATRIX)] = D.ctx,
    fmt: Annotated[Optional[BenchFormat], typer.Option("--format", click_type=ChoiceType(BenchFormat), help="Default: table on a terminal, md otherwise.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the results here (format from the suffix .json/.jsonl/.csv/.md, else --format).", show_default=False)] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A saved `--format json` run to compare with; exit 3 on a regression.", show_default=False, rich_help_panel=_CI)] = None,
    max_regression: Annotated[float, typer.Option("--max-regression", help="Percent a pp/tg speed may drop below the baseline.", rich_help_panel=_CI)] = 10.0,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Measure prompt processing (pp) and generation (tg) speed, load time and peak memory.

    Each configuration runs in its own fresh process. Examples: `ggufkit bench model.gguf -p 512 -n 128`;
    `ggufkit bench a.gguf b.gguf --mmap both -t 1,2 --format csv`;
    `ggufkit bench model.gguf --format json --baseline base.json --max-regression 10` (CI);
    `ggufkit bench model.gguf --rpc 127.0.0.1:50052 --gpu both` (local CPU against an RPC server).
    """
    from ggufkit.bench.baseline import compare, load_baseline
    from ggufkit.bench.options import BenchOptions, parse_int_list
    from ggufkit.bench.render import render
    from ggufkit.bench.runner import run_bench
    from ggufkit.fsutil import atomic_output, check_output
    from ggufkit.runtime.settings import default_threads, parse_gpu_layers

    fmt = fmt or (BenchFormat.TABLE if sys.stdout.isatty() else BenchFormat.MD)
    opts = BenchOptions(
        models=list(models), n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions, mmap=mmap, gpu=gpu,
        gpu_layers=parse_gpu_layers(gpu_layers or "all"), gpu_layers_given=gpu_layers is not None, threads=parse_int_list(threads, "--threads") if threads else [default_threads()],
        batch=parse_int_list(batch, "--batch"), ctx=ctx,
        rpc=[p for p in (rpc or "").split(",") if p.strip()], tensor_split=tensor_split,
    ).check()
    if output is not None:
        check_output(output, list(models), force)
    saved = load_baseline(baseline) if baseline is not None else None
    if saved is not None and max_regression < 0:
        raise BadInputError(f"--max-regression must be >= 0, not {max_regression}")

    run = run_bench(opts, on_progress=None if quiet else _progress_printer(), on_notice=notice)
    comparison = compare(run, saved, max_regression, str(baseline)) if saved is not None else None
    if comparison is not None:
        run.comparison = comparison.to_dict()

    if fmt is BenchFormat.TABLE:
        _print_rich(run)
    else:
        sys.stdout.write(render(run, fmt))
    if output is not None:
        with atomic_output(output) as tmp:
            tmp.write_text(render(run, _SUFFIX_FORMATS.get(output.suffix.lower(), BenchFormat.MD if fmt is BenchFormat.TABLE else fmt)))

    failed = run.failed
    if failed:
        notice(f"{len(failed)} of {len(run.rows)} configuration(s) failed (see the error column)")
    if comparison is not None:
        _report_comparison(comparison)
        if comparison.regressions:
            return EXIT_REGRESSION
    return EXIT_FAILURE if failed else 0


def _progress_printer():
    tty = sys.stderr.isatty()

    def show(p) -> None:
        rep = f" {p.rep}/{p.reps}" if p.reps else ""
        line = f"[{p.index}/{p.total}] {p.label}: {p.stage}{rep}"
        if tty:
            sys.stderr.write(f"\r\033[K{line}" + ("\n" if p.stage in ("done", "failed") else ""))
        elif p.stage in ("load", "done", "failed"):  # logs get one line per step that matters
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return show


def _print_rich(run) -> None:
    from ggufkit.cli.bench_table import print_table

    print_table(run)


def _report_comparison(cmp) -> None:
    """The gate's verdict on stderr (stdout keeps only the results)."""
    from ggufkit.cli.output import table

    if cmp.changes:
        rows = [[c.label, c.metric, f"{c.baseline_tps:.2f}", f"{c.tps:.2f}", f"{c.change_pct:+.1f}%",
                 "REGRESSED" if c.regressed else "ok"] for c in cmp.changes]
        sys.stderr.write(table(rows, ["config", "test", "baseline t/s", "t/s", "change", "verdict"]) + "\n")
    for label in cmp.unmatched:
        notice(f"no baseline row for {label}: not compared")
    n = len(cmp.regressions)
    notice(f"{n} figure(s) regressed by more than {cmp.max_regression:g}% against {cmp.baseline}" if n
           else f"no regression beyond {cmp.max_regression:g}% against {cmp.baseline} ({len(cmp.changes)} figure(s) compared)")
