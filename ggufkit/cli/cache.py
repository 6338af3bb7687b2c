"""`ggufkit cache list|clear`: the conversions of legacy inputs that run, bench and quantize keep."""

from __future__ import annotations

import time

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import human_bytes, notice, print_json, table

app = typer.Typer(
    name="cache",
    help="List or clear the conversions of legacy inputs that run, bench and quantize keep, and the "
         "candidates `fit` quantizes.\n\n"
         "Where: $GGUFKIT_CACHE/converted, else ~/.cache/ggufkit/converted. Size cap: GGUFKIT_CACHE_MAX "
         "(e.g. 2GiB; default 10 GiB), least recently used files go first.",
    no_args_is_help=True,
)


@app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """List the cached conversions, least recently used first, with the total and the cap."""
    from ggufkit.converters import cache

    listed, folder, cap = cache.entries(), cache.cache_dir(), cache.max_bytes()
    total = sum(e.size for e in listed)
    if json_:
        print_json({"path": str(folder), "total_bytes": total, "max_bytes": cap,
                    "entries": [{"file": e.path.name, "source": e.source_name, "size_bytes": e.size,
                                 "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(e.last_used))}
                                for e in listed]})
        return
    if listed:
        rows = [[e.source_name, human_bytes(e.size), time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used)),
                 e.path.name] for e in listed]
        typer.echo(table(rows, ["source", "size", "last used", "file"]))
    typer.echo(f"{len(listed)} file(s), {human_bytes(total)} of {human_bytes(cap)} in {folder}")


@app.command("clear")
def clear() -> None:
    """Remove every cached conversion (each is made again on its next use)."""
    from ggufkit.converters import cache

    removed = cache.clear()
    notice(f"removed {len(removed)} file(s), {human_bytes(sum(e.size for e in removed))}, from {cache.cache_dir()}")
