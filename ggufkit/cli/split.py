"""`ggufkit split` and `ggufkit merge`: a model into shards and back, as llama.cpp's llama-gguf-split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, JsonOpt, QuietOpt
from ggufkit.cli.output import human_bytes, print_json, table
from ggufkit.errors import BadInputError

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the files it would write; write nothing.")]


def parse_split_size(text: str, flag: str) -> int:
    """A --max-size / --split-max-size value in llama-gguf-split's units."""
    from ggufkit.units import parse_bytes

    n = parse_bytes(text, decimal=True)
    if n is None or n < 1:
        raise BadInputError(f"{flag} {text!r} is not a size (e.g. 500M = 500 MB, 2G = 2 GB, 2GiB)")
    return n


def split(
    model: Annotated[Path, typer.Argument(help="GGUF model (the first shard of a split model is split anew).", show_default=False)],
    max_size: Annotated[Optional[str], typer.Option("--max-size", help="Most tensor data per shard, in llama-gguf-split's units: 500M = 500 MB, 2G = 2 GB (powers of 1000, as Hugging Face's 50 GB cap); 2GiB binary; a plain number is bytes.", show_default=False)] = None,
    max_tensors: Annotated[Optional[int], typer.Option("--max-tensors", min=1, help="Most tensors per shard.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PREFIX of the shards, PREFIX-00001-of-0000N.gguf ... (a trailing .gguf is dropped; a folder: in it, named after the input). Default: beside the input, named after it.", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Split a GGUF model into shards, byte for byte as llama.cpp's `llama-gguf-split --split`.

    Give one of --max-size or --max-tensors. Tensors stay in order; only the first shard holds the
    metadata; every shard gets split.no, split.count and split.tensors.count. llama.cpp (and every
    ggufkit command) loads the model from its first shard. The shards appear all or none.
    Example: `ggufkit split model.gguf --max-size 2G`.
    """
    from ggufkit.cli.progress import byte_bar
    from ggufkit.surgery.split import split as split_model

    limit = None if max_size is None else parse_split_size(max_size, "--max-size")
    with byte_bar(model.stat().st_size if model.is_file() else 0, model.name, quiet or json_ or dry_run) as bar:
        report = split_model(model, output, limit, max_tensors, dry_run, force, bar)
    _print(report, "would write" if dry_run else "wrote", json_, quiet)


def merge(
    first: Annotated[Path, typer.Argument(help="The first shard, NAME-00001-of-0000N.gguf (the others are found beside it).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file. Default: NAME.gguf beside the shards.", show_default=False)] = None,
    drop_split_keys: Annotated[bool, typer.Option("--drop-split-keys", help="Leave out split.no, split.count and split.tensors.count (llama-gguf-split keeps them): the file as it was before it was split.")] = False,
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Join a split model into one GGUF file, byte for byte as llama.cpp's `llama-gguf-split --merge`.

    Every shard is checked first (present, complete, of this model and this split). The merged file keeps
    the first shard's metadata with split.count set to 0, as llama-gguf-split writes it.
    Example: `ggufkit merge model-00001-of-00003.gguf -o model.gguf`.
    """
    from ggufkit.surgery.split import merge as merge_model

    report = merge_model(first, output, dry_run, force, drop_split_keys=drop_split_keys)
    _print(report, "would write" if dry_run else "wrote", json_, quiet)


def _print(report, verb: str, json_: bool, quiet: bool) -> None:  # noqa: ANN001
    if json_:
        print_json(report.to_dict())
        return
    if quiet:
        return
    n = len(report.outputs)
    what = f"{n} shards" if n > 1 or len(report.inputs) == 1 else "1 file"
    typer.echo(f"{verb} {what} from {report.input}"
               + (f" and {len(report.inputs) - 1} more shards" if len(report.inputs) > 1 else "")
               + f": {report.tensors} tensors, {human_bytes(report.bytes)}"
               + ("" if report.dry_run else f" in {report.seconds:.2f} s"))
    rows = [[o["path"], o["tensors"], human_bytes(o["bytes"])] for o in report.outputs]
    typer.echo(table(rows, ["file", "tensors", "size"]))
