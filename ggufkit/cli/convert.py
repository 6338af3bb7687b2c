"""`ggufkit convert`: legacy GGML/GGMF/GGJT files to GGUF, one file or a batch."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, JsonOpt, QuietOpt, complete_families
from ggufkit.cli.output import human_bytes, notice, print_json
from ggufkit.errors import EXIT_FAILURE, EXIT_INTERRUPTED, BadInputError, GgufkitError


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
    arch: Annotated[Optional[str], typer.Option("--arch", help="The model family, when a file is ambiguous: llama, gpt2, starcoder, gptneox, mpt, falcon (gptj, replit, rwkv: inspect only). Default: told from the file.", autocompletion=complete_families)] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-read the output and compare every tensor with the input: copied blocks byte for byte, repacked ones as dequantized values; prints what it checked and the largest difference. A difference fails the file (exit 1) and writes nothing.")] = False,
    distinct_names: Annotated[bool, typer.Option("--distinct-names", help="Batch: when inputs would make the same output name (llama-ggml-q4_0.bin and llama-q4_0.bin both make llama-q4_0.gguf), name the later ones NAME-2.gguf, NAME-3.gguf ... Without it such a batch is refused before any work.")] = False,
    split_max_size: Annotated[Optional[str], typer.Option("--split-max-size", help="Split the output into shards of at most this much tensor data, as `ggufkit split --max-size` (500M = 500 MB, 2G = 2 GB): OUT-00001-of-0000N.gguf ...", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write nothing: show each input's output name, what each tensor would become (copy, repack, requantize), clashing names, and the disk space needed against what is free.")] = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Convert GGML-era files to GGUF: LLaMA (GGML, GGMF, GGJT v1-v3), the ggml examples' GPT-2/Cerebras, StarCoder, GPT-NeoX/Dolly and MPT, Falcon (GGCC, GGMF).

    GGJT v3 blocks are copied unchanged; older quantized blocks are repacked into today's layouts
    (nibble order: exact; f32 scales: rounded to f16, the largest change reported); Q4_2/Q4_3 are
    requantized by llama.cpp. A multi-part model (NAME, NAME.1, ...) is read from its first part.

    One file converts to -o FILE (default: beside it). Several inputs, or a directory, make a batch into
    --out-dir: named files that are not legacy models fail, a directory's other files are skipped, and
    so are models of a family llama.cpp cannot run (inspect only). Outputs whose names would clash are
    found before any work.

    Settings the legacy file does not hold come from the flags, else from --metadata-dir's config.json,
    else the defaults; the summary says which. Outputs are written to a temporary file and renamed
    into place when complete; existing outputs are kept unless --force (a batch skips them). Ctrl-C
    stops at once, writes nothing half-done and says what was finished (exit 130).
    """
    from ggufkit.converters.metadata import ConvertOptions

    from ggufkit.cli.split import parse_split_size

    options = ConvertOptions(eps, context_length, rope_freq_base, gqa, name, description, metadata_dir, verify,
                             arch, requantize_to,
                             None if split_max_size is None else parse_split_size(split_max_size, "--split-max-size"))
    try:
        return _convert(inputs, output, out_dir, options, jobs, distinct_names, dry_run, force, quiet, json_)
    except KeyboardInterrupt:  # while reading the inputs (the conversions report their own interruption)
        notice("interrupted before any file was converted: nothing written")
        return EXIT_INTERRUPTED


def _convert(inputs: list[Path], output: Path | None, out_dir: Path | None, options, jobs: int, distinct_names: bool,
             dry_run: bool, force: bool, quiet: bool, json_: bool) -> int:
    batch = out_dir is not None or len(inputs) > 1 or inputs[0].is_dir()
    if batch and output is not None:
        what = f"{inputs[0]} is a directory" if len(inputs) == 1 else f"{len(inputs)} inputs were given"
        raise BadInputError(f"{what}: -o names one output file; convert several with --out-dir DIR")
    if not batch:
        from ggufkit.names import gguf_name

        src = inputs[0]
        pairs, clashes = [(src, _single_output(src, output, gguf_name, dry_run))], []
    else:
        from ggufkit.converters.batch import expand_inputs, find_clashes, plan_outputs
        from ggufkit.fsutil import check_writable, make_dir

        files, passed = expand_inputs(inputs)
        target = out_dir if out_dir is not None else Path(".")
        clashes = find_clashes(files, target)
        pairs = plan_outputs(files, target, distinct_names or dry_run)
        if not dry_run:
            check_writable(make_dir(target))
    if dry_run:
        return _dry_run(pairs, clashes, options, force, batch, distinct_names, json_)
    if not batch:
        return _one(*pairs[0], options, force, quiet, json_)
    for a, b, out in clashes:
        notice(f"{b}: its output would be {out.name}, as {a}'s is: writing {dict(pairs)[b].name}")
    return _batch(pairs, passed, options, jobs, force, quiet, json_)


def _one(src: Path, out: Path, options, force: bool, quiet: bool, json_: bool) -> int:
    from ggufkit.cli.convert_render import summary_lines
    from ggufkit.cli.progress import byte_bar
    from ggufkit.converters.batch import failed, planned_bytes
    from ggufkit.converters.engine import ConvertReport, convert_legacy

    total, done = planned_bytes(src), [0]
    try:
        with byte_bar(total, src.name, quiet or json_) as bar:
            def progress(n: int) -> None:
                done[0] += n
                if bar is not None:
                    bar(n)

            report = convert_legacy(src, out, options, force, progress)
    except GgufkitError as e:
        if json_:  # the promised object, then the one error line
            print_json(dataclasses.asdict(failed(src, out, e)))
        raise
    except KeyboardInterrupt:
        if json_:
            print_json(dataclasses.asdict(ConvertReport(str(src), str(out), "interrupted", "nothing written")))
        notice(f"interrupted: {src} -> {out} stopped after {human_bytes(done[0])} of {human_bytes(total)}; "
               "nothing written")
        return EXIT_INTERRUPTED
    for w in report.warnings:
        notice(f"warning: {src}: {w}")
    if json_:
        print_json(dataclasses.asdict(report))
    elif not quiet:
        typer.echo("\n".join(summary_lines(report)))
    return 0


def _batch(pairs: list[tuple[Path, Path]], passed: list[Path], options, jobs: int, force: bool, quiet: bool,
           json_: bool) -> int:
    from ggufkit.cli.convert_render import batch_table
    from ggufkit.cli.progress import byte_bar
    from ggufkit.converters.batch import convert_batch, planned_bytes
    from ggufkit.converters.engine import ConvertReport

    done: list[ConvertReport] = []
    interrupted = False
    try:
        with byte_bar(sum(planned_bytes(f) for f, _ in pairs), f"{len(pairs)} files", quiet or json_) as progress:
            convert_batch(pairs, options, jobs, force, progress, on_done=done.append)
    except KeyboardInterrupt:
        interrupted = True
    order = {str(f): k for k, (f, _) in enumerate(pairs)}
    items = sorted(done, key=lambda i: order[i.input])
    if not interrupted:
        items += [ConvertReport(str(f), "", "skipped", "not a legacy model file (a directory's other files are "
                                "passed over)") for f in passed]
    for i in items:
        for w in i.warnings:
            notice(f"warning: {i.input}: {w}")
    if json_:
        print_json([dataclasses.asdict(i) for i in items])
    elif not quiet and items:
        typer.echo(batch_table(items, options.verify))
    if interrupted:
        stopped = sum(i.status == "interrupted" for i in items)
        notice(f"interrupted: {len(items) - stopped} of {len(pairs)} files done (listed above); {stopped} stopped "
               f"mid-way, nothing of them written; {len(pairs) - len(items)} not started")
        return EXIT_INTERRUPTED
    failed = [i for i in items if i.status == "failed"]
    if failed:
        sys.stderr.write(f"ggufkit: error: {len(failed)} of {len(items)} files failed\n")
        return EXIT_FAILURE
    return 0


def _single_output(src: Path, output: Path | None, name_of, dry_run: bool) -> Path:  # noqa: ANN001
    """-o FILE (its folder made if missing, as --out-dir's is; not on a dry run), -o DIR (an existing folder:
    the output goes inside it, named as it would be beside the input), or beside the input."""
    from ggufkit.fsutil import make_dir

    if output is None:
        return src.with_name(name_of(src))
    if output.is_dir():
        return output / name_of(src)
    if not dry_run:
        make_dir(output.parent)
    return output


def _dry_run(pairs: list[tuple[Path, Path]], clashes: list, options, force: bool, batch: bool, distinct: bool,
             json_: bool) -> int:
    from ggufkit.cli.convert_render import plan_text
    from ggufkit.converters.dryrun import dry_run

    plan = dry_run(pairs, options, force, batch, clashes, distinct)
    if json_:
        print_json(plan.to_dict())
    else:
        typer.echo(plan_text(plan, not batch))
    if clashes and not distinct:
        from ggufkit.converters.batch import clash_error

        raise clash_error(clashes)  # the real run's refusal
    failed = [f for f in plan.files if f.status == "fail"]
    if failed and not batch:  # the real run's error line and exit code
        error = GgufkitError(failed[0].message, failed[0].input)
        error.exit_code = failed[0].exit_code
        raise error
    if failed:
        sys.stderr.write(f"ggufkit: error: {len(failed)} of {len(plan.files)} files would fail\n")
        return EXIT_FAILURE
    return 0
