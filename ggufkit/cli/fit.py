"""`ggufkit fit`: the quantization of a model that suits this machine, measured: one table, one answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.choices import Choice
from ggufkit.cli.common import ChoiceType, JsonOpt, QuietOpt, complete_quant_types
from ggufkit.cli.output import notice, print_json, table
from ggufkit.errors import EXIT_FAILURE, EXIT_INTERRUPTED, BadInputError

_BUDGETS = "Budgets (the answer meets them all)"
_MEASURE = "How it measures"


class FitFormat(Choice):
    TABLE = "table"
    MD = "md"
    CSV = "csv"


def fit(
    source: Annotated[Path, typer.Argument(help="The model to quantize: F16/BF16/F32 GGUF, or any legacy file `convert` reads.", show_default=False)],
    types: Annotated[Optional[list[str]], typer.Option("--type", "-t", help="A candidate type (repeat). Default: Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S IQ4_XS Q3_K_M IQ3_M Q2_K, and the IQ2 types with a matrix.", show_default=False, autocompletion=complete_quant_types)] = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Most memory a run may take, e.g. 4G, 3.5GiB, 800M: peak resident memory, plus GPU memory when offloaded.", show_default=False, rich_help_panel=_BUDGETS)] = None,
    min_speed: Annotated[Optional[float], typer.Option("--min-speed", help="Fewest generated tokens per second.", show_default=False, rich_help_panel=_BUDGETS)] = None,
    max_kld: Annotated[Optional[float], typer.Option("--max-kld", help="Largest mean KL-divergence from the source.", show_default=False, rich_help_panel=_BUDGETS)] = None,
    ctx: Annotated[int, typer.Option("--ctx", "-c", help="Context: memory is measured with it, quality in chunks of it.", rich_help_panel=_MEASURE)] = 512,
    text: Annotated[Optional[Path], typer.Option("--file", "-f", help="Text to score on. Default: the text `eval` uses.", show_default=False, rich_help_panel=_MEASURE)] = None,
    chunks: Annotated[int, typer.Option("--chunks", help="Chunks of the text to score.", rich_help_panel=_MEASURE)] = 20,
    imatrix: Annotated[Optional[Path], typer.Option("--imatrix", help="Importance matrix for every candidate (llama-imatrix's GGUF or .dat).", show_default=False, rich_help_panel=_MEASURE)] = None,
    imatrix_text: Annotated[Optional[str], typer.Option("--imatrix-text", help="Make the matrix from this text ('default': eval's text), cached.", show_default=False, rich_help_panel=_MEASURE)] = None,
    gpu_layers: Annotated[str, typer.Option("--gpu-layers", "-ngl", help="Layers to offload to a GPU (a number or 'all').", rich_help_panel=_MEASURE)] = "0",
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads. Default: one per free CPU.", show_default=False, rich_help_panel=_MEASURE)] = None,
    repetitions: Annotated[int, typer.Option("--repetitions", "-r", help="Timed runs of each speed test.", rich_help_panel=_MEASURE)] = 3,
    keep: Annotated[Optional[Path], typer.Option("--keep", help="Copy the quantized files here (NAME-TYPE.gguf; the chosen one at least).", show_default=False)] = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="Draw memory against mean KLD to a .png or .svg.", show_default=False)] = None,
    fmt: Annotated[FitFormat, typer.Option("--format", click_type=ChoiceType(FitFormat), help="table, md or csv.")] = FitFormat.TABLE,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Which quantization suits this machine: each candidate is quantized, then measured here (file
    size, peak memory of a fresh process at --ctx, prompt and generation tokens/s) and scored
    against SOURCE in one `eval` pass (PPL, mean and 99% KL-divergence, same top token). The answer is
    the lowest mean KLD that meets every budget; each other candidate says why not, and whether it is
    on the Pareto front of memory against KLD. Nothing fits: exit 1.

    Files and figures are cached: a second fit of the same file with other budgets takes seconds.
    Ctrl-C prints what was measured. Example: `ggufkit fit model-f16.gguf --max-memory 4G`.
    """
    from ggufkit.fit.job import FitOptions, run_fit
    from ggufkit.fit.result import Budgets
    from ggufkit.fsutil import check_output, make_dir
    from ggufkit.runtime.settings import parse_gpu_layers
    from ggufkit.units import parse_bytes

    memory = None if max_memory is None else parse_bytes(max_memory)
    if max_memory is not None and memory is None:
        raise BadInputError(f"--max-memory: {max_memory!r} is not a size (e.g. 4G, 3.5GiB, 800M)")
    opts = FitOptions(source, list(types or []), Budgets(memory, min_speed, max_kld), ctx, text, chunks, imatrix,
                      imatrix_text, parse_gpu_layers(gpu_layers), threads, repetitions, keep)
    opts.check()
    if plot_file is not None:
        from ggufkit.evaluate.plot import check_plot

        check_output(plot_file, [source], force=True)  # before the work: a missing folder fails now
        check_plot(plot_file)  # and a missing matplotlib
    if keep is not None:
        make_dir(keep)
    with _Progress(quiet or json_) as progress:
        result = run_fit(opts, progress.show, None if quiet else notice)
    if json_:
        print_json(result.as_json())
    else:
        _print(result, fmt)
    if plot_file is not None:
        from ggufkit.fit.plot import plot

        plot(result, plot_file)
    if result.partial:
        return EXIT_INTERRUPTED
    return 0 if result.choice is not None else EXIT_FAILURE


def _print(result, fmt: FitFormat) -> None:
    from ggufkit.fit import report

    if fmt is FitFormat.MD:
        sys.stdout.write(report.markdown(result))
        return
    if fmt is FitFormat.CSV:
        sys.stdout.write(report.csv_text(result))
        return
    import shutil
    import textwrap

    header, cells = report.cells(result)
    caption = report.caption(result)
    if sys.stdout.isatty():  # a terminal gets what fits its width; files and pipes every column
        width = shutil.get_terminal_size((80, 24)).columns
        header, cells = report.narrow(header, cells, width)
        caption = textwrap.fill(caption, width)
    lines = [table(cells, header), "", *report.reasons(result), "", caption, *report.closing(result)]
    sys.stdout.write("\n".join(lines) + "\n")


class _Progress:
    """One tqdm bar for the step under way (its tensors, runs or chunks) on a terminal; one line per
    step on a log; nothing with --quiet or --json."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.step: tuple[str, str] | None = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def show(self, p) -> None:
        if self.quiet:
            return
        step = (p.stage, p.label.split(" ")[0] if p.stage == "measure" else p.label)
        if step != self.step:
            self.step = step
            self._close()
            if not self.tty:
                sys.stderr.write(f"fit: {p.stage} {step[1]}\n")
            else:
                from tqdm import tqdm

                self.bar = tqdm(total=p.total or None, desc=f"{p.stage} {step[1]}", file=sys.stderr, leave=False)
        if self.bar is not None:
            self.bar.total = p.total or None
            self.bar.n = p.done
            if p.stage == "measure":
                self.bar.set_postfix_str(p.label.split(" ", 1)[-1], refresh=False)
            self.bar.refresh()
