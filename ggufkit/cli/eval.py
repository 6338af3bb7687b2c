"""`ggufkit eval`: perplexity of models on a text and, against the first, KL-divergence and top-token agreement."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ggufkit.choices import Choice
from ggufkit.cli.common import ChoiceType, GpuLayersOpt, JsonOpt, QuietOpt
from ggufkit.cli.output import fitted_table, notice, print_json
from ggufkit.runtime.settings import RunSettings


class EvalFormat(Choice):
    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"


def eval_(
    models: Annotated[list[Path], typer.Argument(help="The base model, then the models to compare with it (GGUF or legacy files).", show_default=False)],
    text: Annotated[Path | None, typer.Option("--file", "-f", help="The text to score. Default: the Python language reference's help topics (pydoc_data.topics, in every CPython install; ~110k tokens).", show_default=False)] = None,
    ctx: Annotated[int, typer.Option("--ctx", "-c", help="Tokens per chunk; the second half of each is scored, as llama-perplexity does.")] = 512,
    chunks: Annotated[int | None, typer.Option("--chunks", help="Stop after this many chunks. Default: the whole text.", show_default=False)] = None,
    fmt: Annotated[EvalFormat, typer.Option("--format", click_type=ChoiceType(EvalFormat), help="table, md, csv or json.")] = EvalFormat.TABLE,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result to this file (in --format; the table as Markdown).", show_default=False)] = None,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Draw file size against mean KLD (PPL for one model) to a .png or .svg (needs matplotlib).", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads. Default: every core.", show_default=False)] = None,
    gpu_layers: GpuLayersOpt = str(RunSettings.gpu_layers),
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """What quantization costs: each model's perplexity on a text and, against the first model (the base),
    KL-divergence of its token distribution (mean ± error, median, 99th percentile, max), top-token
    agreement, Δp and the PPL ratio — llama-perplexity's statistics — with file size, bits per weight and
    tokens/s, in one pass over the text. Ctrl-C prints the figures so far, marked partial.
    """
    from ggufkit.cli.progress import count_bar
    from ggufkit.evaluate import report
    from ggufkit.evaluate.perplexity import evaluate
    from ggufkit.evaluate.text import load_text
    from ggufkit.fsutil import check_output
    from ggufkit.runtime import abort
    from ggufkit.runtime.params import LoadParams
    from ggufkit.runtime.settings import default_threads, parse_gpu_layers

    fmt = EvalFormat.JSON if json_ else fmt
    for out in (output, plot_file):
        if out is not None:
            check_output(out, list(models), force=True)  # before the work: a missing folder fails now
    if plot_file is not None:
        from ggufkit.evaluate.plot import check_plot

        check_plot(plot_file)  # a missing matplotlib fails now, not after
    body, source = load_text(text)
    abort.install(models[0])
    load = LoadParams(models[0], n_threads=threads or default_threads(), n_gpu_layers=parse_gpu_layers(gpu_layers))
    with count_bar(0, f"eval {len(models)} model{'s' * (len(models) > 1)}", "chunk", quiet or fmt == EvalFormat.JSON) as bar:
        def on_chunk(done: int, total: int) -> None:
            if bar is not None:
                bar(done, total)
        result = evaluate(models, body, source, ctx, chunks, load, notice, on_chunk)
    rendered = {
        EvalFormat.TABLE: lambda: fitted_table(report.rows(result), report.HEADER) + "\n" + report.caption(result),
        EvalFormat.MD: lambda: report.markdown(result),
        EvalFormat.CSV: lambda: report.csv_text(result),
    }
    if fmt == EvalFormat.JSON:
        print_json(report.as_json(result))
    else:
        sys.stdout.write(rendered[fmt]().rstrip("\n") + "\n")
    if output is not None:
        import json

        from ggufkit.fsutil import atomic_output

        text_out = (json.dumps(report.as_json(result), indent=2) + "\n" if fmt == EvalFormat.JSON
                    else report.csv_text(result) if fmt == EvalFormat.CSV else report.markdown(result))
        with atomic_output(output) as tmp:
            tmp.write_text(text_out)
    if plot_file is not None:
        from ggufkit.evaluate.plot import plot

        plot(result, plot_file)
    if result.partial:
        notice(f"interrupted: figures from {result.chunks} of {result.chunks_total} chunks")
        return 130
    return 0
