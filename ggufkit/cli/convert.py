"""`ggufkit convert`: legacy GGJT v3 ("ggmlv3") files to GGUF, one file or a batch."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, JsonOpt, QuietOpt
from ggufkit.cli.output import human_bytes, print_json, table
from ggufkit.errors import EXIT_FAILURE, BadInputError


def convert(
    inputs: Annotated[list[Path], typer.Argument(help="GGJT v3 files, or directories of them.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input only). Default: beside the input, named after it.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Directory for the outputs of a batch.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Files converted in parallel.")] = 1,
    eps: Annotated[Optional[float], typer.Option("--eps", help="RMS norm epsilon (the file does not hold it). Default 5e-6, as llama.cpp's own converter; LLaMA-1 used 1e-6, LLaMA-2 1e-5.")] = None,
    context_length: Annotated[Optional[int], typer.Option("--context-length", "-c", help="Training context length. Default 2048 (LLaMA-1); LLaMA-2 is 4096.")] = None,
    rope_freq_base: Annotated[Optional[float], typer.Option("--rope-freq-base", help="RoPE frequency base (CodeLlama: 1e6). Default: not written, llama.cpp uses 10000.")] = None,
    gqa: Annotated[Optional[int], typer.Option("--gqa", help="n_head / n_head_kv. Default: inferred from the K projection's shape.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="general.name. Default: the input file name up to its first dot.")] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="general.description.")] = None,
    metadata_dir: Annotated[Optional[Path], typer.Option("--metadata-dir", help="A Hugging Face model folder: hparams from config.json, special tokens and chat template from tokenizer_config.json/tokenizer.json.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-read the output and compare every tensor with the input.")] = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Convert legacy GGJT v3 LLaMA-family files to GGUF, copying every tensor's bytes unchanged.

    Settings the legacy file does not hold come from the flags, else from --metadata-dir's config.json,
    else the defaults; the summary says which. Outputs are written to a temporary file and renamed
    into place when complete; existing outputs are kept unless --force (a batch skips them).
    """
    from ggufkit.converters.batch import convert_batch, expand_inputs, output_name, planned_bytes
    from ggufkit.converters.ggjt import convert_ggjt
    from ggufkit.converters.metadata import ConvertOptions

    from ggufkit.cli.progress import byte_bar

    options = ConvertOptions(eps, context_length, rope_freq_base, gqa, name, description, metadata_dir, verify)
    batch = out_dir is not None or len(inputs) > 1 or inputs[0].is_dir()
    if not batch:
        src = inputs[0]
        out = output or src.with_name(output_name(src))
        with byte_bar(planned_bytes(src), src.name, quiet or json_) as progress:
            report = convert_ggjt(src, out, options, force, progress)
        if json_:
            print_json(dataclasses.asdict(report))
        elif not quiet:
            m = report.metadata
            src_of = m["sources"]
            typer.echo(f"converted {report.input} -> {report.output}")
            typer.echo(f"  {report.file_type}, {report.tensors} tensors, {human_bytes(report.bytes)} in {report.seconds:.2f} s")
            base = m["rope_freq_base"] if m["rope_freq_base"] is not None else "not set (llama.cpp: 10000)"
            typer.echo(f"  context_length {m['context_length']} ({src_of['context_length']}), "
                       f"rms_norm_eps {m['rms_norm_eps']:g} ({src_of['eps']}), rope_freq_base {base}, "
                       f"head_count_kv {m['head_count_kv']}")
        return 0
    if output is not None:
        raise BadInputError("--output takes one input file; use --out-dir for several")
    files = expand_inputs(inputs)
    target = out_dir or Path(".")
    if not target.is_dir():
        raise BadInputError("output directory does not exist", target)
    pairs = [(f, target / output_name(f)) for f in files]
    total = sum(planned_bytes(f) for f in files)
    with byte_bar(total, f"{len(files)} files", quiet or json_) as progress:
        items = convert_batch(pairs, options, jobs, force, progress)
    if json_:
        print_json([dataclasses.asdict(i) for i in items])
    elif not quiet:
        rows = [[Path(i.input).name, i.file_type or "-", human_bytes(i.bytes) if i.bytes else "-",
                 f"{i.seconds:.2f}" if i.status == "converted" else "-",
                 i.status + (f": {i.message}" if i.message else "")] for i in items]
        typer.echo(table(rows, ["file", "ftype", "size", "seconds", "status"]))
    failed = [i for i in items if i.status == "failed"]
    if failed:
        sys.stderr.write(f"ggufkit: error: {len(failed)} of {len(items)} files failed\n")
        return EXIT_FAILURE
    return 0
