"""`ggufkit convert`: legacy GGML/GGMF/GGJT files to GGUF, one file or a batch."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, JsonOpt, QuietOpt
from ggufkit.cli.output import human_bytes, notice, print_json, table
from ggufkit.errors import EXIT_FAILURE, BadInputError


def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Legacy model files (GGML, GGMF, GGJT v1-v3; for a multi-part model its first part), or directories: a directory stands for the legacy model files directly inside it, its other files are listed as skipped.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input only). Default: beside the input, named after it.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Directory for the outputs of several inputs or a directory (created if missing). Default: the current directory.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Files converted in parallel.")] = 1,
    eps: Annotated[Optional[float], typer.Option("--eps", help="Norm epsilon (the file does not hold it). LLaMA (RMS): default 5e-6, as llama.cpp's own converter; LLaMA-1 used 1e-6, LLaMA-2 1e-5. Other families (LayerNorm): 1e-5, as their programs hard-coded.")] = None,
    context_length: Annotated[Optional[int], typer.Option("--context-length", "-c", help="Training context length. Default: the file's n_ctx where it has one; else 2048 (LLaMA-1: LLaMA-2 is 4096; Falcon).")] = None,
    rope_freq_base: Annotated[Optional[float], typer.Option("--rope-freq-base", help="RoPE frequency base (CodeLlama: 1e6). Default: not written, llama.cpp uses 10000.")] = None,
    gqa: Annotated[Optional[int], typer.Option("--gqa", help="n_head / n_head_kv. Default: inferred from the K projection's shape.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="general.name. Default: the input file name up to its first dot.")] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="general.description.")] = None,
    metadata_dir: Annotated[Optional[Path], typer.Option("--metadata-dir", help="A Hugging Face model folder: hparams from config.json, special tokens and chat template from tokenizer_config.json or tokenizer.json.")] = None,
    requantize_to: Annotated[Optional[str], typer.Option("--requantize-to", help="Type for tensors of the removed Q4_2/Q4_3 types (q4_0, q4_1, q5_0, q5_1, q8_0, f16, f32). Default: Q4_2 -> q4_0, Q4_3 -> q4_1.")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="The model family, when a file is ambiguous: llama, gpt2, starcoder, gptneox, mpt, falcon (gptj, replit, rwkv: inspect only). Default: told from the file.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-read the output and compare every tensor with the input: copied blocks byte for byte, repacked ones as dequantized values; prints what it checked and the largest difference.")] = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Convert GGML-era files to GGUF: LLaMA (GGML, GGMF, GGJT v1-v3), the ggml examples' GPT-2/Cerebras, StarCoder, GPT-NeoX/Dolly and MPT, Falcon (GGCC, GGMF).

    GGJT v3 blocks are copied unchanged; older quantized blocks are repacked into today's layouts
    (nibble order: exact; f32 scales: rounded to f16, the largest change reported); Q4_2/Q4_3 are
    requantized by llama.cpp. A multi-part model (NAME, NAME.1, ...) is read from its first part.

    One file converts to -o FILE (default: beside it). Several inputs, or a directory, make a batch into
    --out-dir: named files that are not legacy models fail, a directory's other files are skipped.

    Settings the legacy file does not hold come from the flags, else from --metadata-dir's config.json,
    else the defaults; the summary says which. Outputs are written to a temporary file and renamed
    into place when complete; existing outputs are kept unless --force (a batch skips them).
    """
    from ggufkit.converters.batch import convert_batch, expand_inputs, output_name, planned_bytes
    from ggufkit.converters.engine import ConvertReport, convert_legacy
    from ggufkit.converters.metadata import ConvertOptions

    from ggufkit.cli.progress import byte_bar

    options = ConvertOptions(eps, context_length, rope_freq_base, gqa, name, description, metadata_dir, verify,
                             arch, requantize_to)
    batch = out_dir is not None or len(inputs) > 1 or inputs[0].is_dir()
    if not batch:
        src = inputs[0]
        out = _single_output(src, output, output_name)
        with byte_bar(planned_bytes(src), src.name, quiet or json_) as progress:
            report = convert_legacy(src, out, options, force, progress)
        for w in report.warnings:
            notice(f"warning: {src}: {w}")
        if json_:
            print_json(dataclasses.asdict(report))
        elif not quiet:
            m = report.metadata
            src_of = m["sources"]
            typer.echo(f"converted {report.input} -> {report.output}")
            typer.echo(f"  {report.file_type}, {report.tensors} tensors, {human_bytes(report.bytes)} in {report.seconds:.2f} s")
            base = (f"{m['rope_freq_base']:g} ({src_of['rope_freq_base']})" if m["rope_freq_base"] is not None
                    else "not set (llama.cpp: 10000)")
            typer.echo(f"  context_length {m['context_length']} ({src_of['context_length']}), "
                       f"{m['eps_name']} {m[m['eps_name']]:g} ({src_of['eps']}), rope_freq_base {base}, "
                       f"head_count_kv {m['head_count_kv']}")
            typer.echo(f"  {conversion_line(report.conversion)}")
            if m["tokenizer"]:
                typer.echo("  tokenizer: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in m["tokenizer"].items()))
            if report.verified is not None:
                typer.echo(f"  {verify_line(report.verified)}")
        return 0
    if output is not None:
        what = f"{inputs[0]} is a directory" if len(inputs) == 1 else f"{len(inputs)} inputs were given"
        raise BadInputError(f"{what}: -o names one output file; convert several with --out-dir DIR")
    files, passed = expand_inputs(inputs)
    from ggufkit.fsutil import check_writable, make_dir

    target = make_dir(out_dir) if out_dir is not None else Path(".")
    check_writable(target)
    pairs = [(f, target / output_name(f)) for f in files]
    total = sum(planned_bytes(f) for f in files)
    with byte_bar(total, f"{len(files)} files", quiet or json_) as progress:
        items = convert_batch(pairs, options, jobs, force, progress)
    items += [ConvertReport(str(f), "", "skipped", "not a legacy model file (a directory's other files are passed over)")
              for f in passed]
    for i in items:
        for w in i.warnings:
            notice(f"warning: {i.input}: {w}")
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


def _single_output(src: Path, output: Path | None, name_of) -> Path:  # noqa: ANN001
    """-o FILE (its folder made if missing, as --out-dir's is), -o DIR (an existing folder: the output goes
    inside it, named as it would be beside the input), or beside the input."""
    from ggufkit.fsutil import make_dir

    if output is None:
        return src.with_name(name_of(src))
    if output.is_dir():
        return output / name_of(src)
    make_dir(output.parent)
    return output


def conversion_line(c: dict) -> str:
    """What happened to the blocks, e.g. "from GGJT v1: 12 tensors repacked (scales rounded to f16, ...)"."""
    parts = [f"{c['copied']} copied"] + ([f"{c['repacked']} repacked"] if c["repacked"] else []) + (
        [f"{c['requantized']} requantized ({', '.join(c['requantized_types'])})"] if c["requantized"] else [])
    loss = c["loss"]
    if c["max_scale_change"] is not None:
        loss += f", largest weight change {c['max_scale_change']:.2e} of its block's largest"
    joined = f", {c['parts']} parts joined" if c["parts"] > 1 else ""
    if c.get("permuted"):
        parts.append(f"{c['permuted']} of them with rows permuted")
    scores = "" if c["vocab_scores"] == "file" else f"; token scores {c['vocab_scores']}"
    return f"from {c['source']}{joined}: tensors {', '.join(parts)}; {loss}{scores}"


def verify_line(v: dict) -> str:
    return (f"verified {v['tensors']} tensors: {v['byte_identical']} byte-identical, {v['compared_as_values']} "
            f"compared as values ({v['values_compared']} values), largest difference {v['max_abs_diff']:.3g}")
