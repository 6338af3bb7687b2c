"""`bench`'s table on a terminal, laid out to fit its width (files and pipes get the full table, render.py).

llama-bench's 14 columns need ~190 columns of screen; squeezed into 80 Rich wrapped every header to one
letter per line. So: settings that are the same on every row move to the title (one row: all of them),
the table keeps what varies and the figures, and where even that does not fit, each row becomes a short
block of `name: value` lines.
"""

from __future__ import annotations

from ggufkit.bench.render import columns

# the columns that say what was measured (the rest are the figures)
SETTINGS = ("model", "arch", "type", "size", "params", "backend", "ngl", "mmap", "threads", "batch")
_LEFT = {"model", "arch", "type", "backend", "mmap", "error"}
_PAD = 3  # Rich's SIMPLE_HEAD box: a space either side and a separator


def layout(run) -> tuple[list[str], list[str], list[list[str]]]:
    """(title parts, header, cells): the settings every row shares go to the title."""
    header, cells = columns(run)
    shared = [i for i, h in enumerate(header) if h in SETTINGS and len({line[i] for line in cells}) <= 1]
    title = [f"{header[i]} {cells[0][i]}" if header[i] not in ("model", "arch", "type", "size") else cells[0][i]
             for i in shared] if cells else []
    keep = [i for i in range(len(header)) if i not in shared]
    return title, [header[i] for i in keep], [[line[i] for i in keep] for line in cells]


def fits(header: list[str], cells: list[list[str]], width: int) -> bool:
    need = sum(max(len(h), *(len(line[i]) for line in cells)) + _PAD for i, h in enumerate(header))
    return need <= width


def _named(h: str, v: str) -> str:
    return v if h in ("model", "arch", "type", "size") else f"{h} {v}"


def compact(header: list[str], line: list[str]) -> list[str]:
    """One row as two or three short lines: its settings, its figures, its error if any."""
    cell = dict(zip(header, line))
    settings = " · ".join(_named(h, cell[h]) for h in header if h in SETTINGS)
    figures = [f"{h.removesuffix(' t/s')} {cell[h]} t/s" for h in header if h.endswith(" t/s")]
    figures += [f"load {cell['load ms']} ms"] if "load ms" in cell else []
    figures += [f"RSS {cell['peak RSS MiB']} MiB"] if "peak RSS MiB" in cell else []
    out = [settings or "(one row)", "  " + "  ".join(figures)]
    return out + ([f"  error: {cell['error']}"] if cell.get("error") else [])


def print_table(run, console=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    m, s = run.machine, run.software
    title, header, cells = layout(run)
    machine = f"{m.cpu}, {m.cores} cores{', ' + ', '.join(m.gpus) if m.gpus else ''} · llama-cpp-python {s.llama_cpp_python} ({', '.join(s.backends)})"
    heading = "\n".join(x for x in (machine, " · ".join(title)) if x)
    if not fits(header, cells, console.width):
        console.print(heading, overflow="fold")
        for line in cells:
            console.print()
            for text in compact(header, line):
                console.print(text, overflow="fold", highlight=False)
        return
    table = Table(title=heading, box=box.SIMPLE_HEAD)
    for h in header:
        table.add_column(h, justify="left" if h in _LEFT else "right", no_wrap=h != "error", overflow="fold")
    for line in cells:
        table.add_row(*line)
    console.print(table)
