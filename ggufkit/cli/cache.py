"""`ggufkit cache list|rm|prune|clear`: the conversions of legacy inputs that run, bench and quantize keep."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import human_bytes, notice, print_json, table

app = typer.Typer(
    name="cache",
    help="List, remove or clear the conversions of legacy inputs that run, bench and quantize keep, and the "
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


def complete_entries(incomplete: str) -> list[str]:
    """`cache rm`: the source names and keys of the entries."""
    from ggufkit.converters import cache

    listed = cache.entries()
    return sorted({n for e in listed for n in (e.source_name, e.key) if n.startswith(incomplete)})


@app.command("rm")
def rm(
    names: Annotated[list[str], typer.Argument(help="A source name (every cached conversion of files so named), a key or its first 4+ hex digits, or a file name, as `cache list` shows them.", show_default=False, autocompletion=complete_entries)],
) -> None:
    """Remove the named cached conversions (each is made again on its next use)."""
    from ggufkit.converters import cache

    removed = [e for name in dict.fromkeys(names) for e in cache.remove(name)]
    notice(f"removed {len(removed)} file(s), {human_bytes(sum(e.size for e in removed))}: "
           + ", ".join(e.path.name for e in removed))


@app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="Remove the conversions not used for longer than this: 30d, 12h, 90m, 2w (a run or bench that reuses one marks it used).", show_default=False)],
) -> None:
    """Remove the cached conversions not used for a while."""
    from ggufkit.converters import cache
    from ggufkit.errors import BadInputError
    from ggufkit.units import parse_duration

    seconds = parse_duration(older_than)
    if seconds is None:
        raise BadInputError(f"--older-than {older_than!r} is not a duration (e.g. 30d, 12h, 90m, 2w)")
    removed = cache.prune(seconds)
    notice(f"removed {len(removed)} file(s) not used for {older_than}, {human_bytes(sum(e.size for e in removed))}, "
           f"from {cache.cache_dir()}")
