"""`ggufkit imatrix`: the importance matrix low-bit quantization needs, computed as llama-imatrix computes it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.common import ChoiceType, GpuLayersOpt, JsonOpt, QuietOpt
from ggufkit.cli.output import notice, print_json
from ggufkit.imatrix.job import ImatrixFormat, ImatrixJob
from ggufkit.runtime.settings import RunSettings


def imatrix(
    model: Annotated[Path | None, typer.Argument(help="The model (GGUF or a legacy file). Leave it out to only combine --in-file matrices.", show_default=False)] = None,
    text: Annotated[Path | None, typer.Option("--file", "-f", help="The text to run through the model. Default: the text `ggufkit eval` uses (pydoc_data.topics).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The matrix file. Default: imatrix.gguf (imatrix.dat with --output-format dat) here.", show_default=False)] = None,
    ctx: Annotated[int, typer.Option("--ctx", "-c", help="Tokens per chunk, as llama-imatrix's --ctx-size.")] = 512,
    chunks: Annotated[int | None, typer.Option("--chunks", help="Stop after this many chunks. Default: the whole text.", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads. Default: one per CPU that others leave free.", show_default=False)] = None,
    gpu_layers: GpuLayersOpt = str(RunSettings.gpu_layers),
    fmt: Annotated[ImatrixFormat, typer.Option("--output-format", click_type=ChoiceType(ImatrixFormat), help="gguf (llama-imatrix's default) or dat (its older format).")] = ImatrixFormat.GGUF,
    in_file: Annotated[list[Path] | None, typer.Option("--in-file", help="A matrix (GGUF or .dat) to add to, as llama-imatrix --in-file (repeatable).", show_default=False)] = None,
    process_output: Annotated[bool, typer.Option("--process-output", help="Also gather output.weight's input.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Compute an importance matrix: run a text through the model chunk by chunk and gather, at the input of
    every matrix multiplication with a weight, the sums of squared activations per column and their counts,
    as llama-imatrix does (the same file). `quantize --imatrix FILE` uses it; IQ1/IQ2 types and Q2_K_S need
    one, and other low-bit types lose less quality with one.

    Examples: `ggufkit imatrix model-f16.gguf -f text.txt -o model.imatrix.gguf`;
    `ggufkit imatrix --in-file a.gguf --in-file b.gguf -o both.gguf`. Ctrl-C writes what the whole chunks
    gave, marked partial, and exits with 130.
    """
    from ggufkit.cli.progress import chunk_bar
    from ggufkit.imatrix.job import run_job
    from ggufkit.runtime import abort

    out = output if output is not None else Path(f"imatrix.{fmt}")
    job = ImatrixJob(model, out, text, ctx, chunks, threads, gpu_layers, fmt, in_file or [], process_output, force)
    if model is not None:
        abort.install(model)
    with chunk_bar("imatrix", quiet or json_) as bar:
        report = run_job(job, bar, None if quiet else notice)
    if json_:
        print_json(report.to_dict())
    elif not quiet:
        sys.stdout.write(_summary(report) + "\n")
    if report.left_out and not quiet:
        notice(f"{len(report.left_out)} tensor(s) had no data and are not in the .dat file (as llama-imatrix)")
    if report.partial:
        notice(f"interrupted: {report.output} holds {report.chunks} of {report.chunks_total} chunks, marked partial")
        return 130
    return 0


def _summary(r) -> str:
    what = f"{r.entries} tensors, {r.chunk_count} chunks of {r.chunk_size} tokens"
    if r.model is None:
        return f"{r.output}: {what}, combined from {len(r.in_files)} file(s)"
    speed = f"PPL {r.ppl:.4f} ± {r.ppl_err:.4f}, {r.tokens_per_second:.1f} tokens/s, {r.seconds:.1f} s"
    added = f" (added to {len(r.in_files)} --in-file)" if r.in_files else ""
    return f"{r.output}: {what}{added}; {speed}"
