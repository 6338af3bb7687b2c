"""A fit as text: the table (narrowed to a terminal's width), Markdown, CSV; the closing lines."""

from __future__ import annotations

import csv
import io

from ggufkit.fit.measure import N_GEN, N_PROMPT
from ggufkit.fit.result import FitResult, Row
from ggufkit.units import human_bytes

HEADER = ["type", "size", "memory", "GPU", "pp t/s", "tg t/s", "PPL", "mean KLD", "99% KLD", "same top",
          "fits", "front"]
# dropped first to last where a terminal is too narrow for every column
_DROP = ("99% KLD", "PPL", "pp t/s", "same top", "size")
_PAD = 2  # output.table's gap between columns


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _fits(r: Row, choice: str | None) -> str:
    if r.type == choice:
        return "CHOICE"
    return {True: "yes", False: "no", None: "-"}[r.fits]


def cells(result: FitResult) -> tuple[list[str], list[list[str]]]:
    """Every column; GPU only where something was offloaded."""
    rows = []
    for r in result.rows:
        size = (human_bytes(r.size_bytes) if r.size_bytes is not None
                else f"~{human_bytes(r.predicted_size_bytes)}" if r.predicted_size_bytes is not None else "-")
        rows.append([
            r.type, size, "-" if r.memory_bytes is None else human_bytes(r.memory_bytes),
            "-" if r.gpu_memory_bytes is None else human_bytes(r.gpu_memory_bytes),
            _num(r.pp_tps, ".1f"), _num(r.tg_tps, ".1f"), _num(r.ppl, ".4f"), _num(r.mean_kld, ".6f"),
            _num(r.kld_p99, ".5f"), "-" if r.same_top is None else f"{100 * r.same_top:.2f} %",
            _fits(r, result.choice), "yes" if r.pareto else "",
        ])
    keep = [i for i, h in enumerate(HEADER) if h != "GPU" or any(r.gpu_memory_bytes is not None for r in result.rows)]
    return [HEADER[i] for i in keep], [[line[i] for i in keep] for line in rows]


def narrow(header: list[str], rows: list[list[str]], width: int) -> tuple[list[str], list[list[str]]]:
    """Columns dropped (least needed first) until the table fits `width`."""
    def need(h: list[str], rs: list[list[str]]) -> int:
        return sum(max(len(x) for x in [c, *(r[i] for r in rs)]) + _PAD for i, c in enumerate(h)) - _PAD

    for name in _DROP:
        if need(header, rows) <= width:
            break
        if name in header:
            i = header.index(name)
            header = header[:i] + header[i + 1:]
            rows = [r[:i] + r[i + 1:] for r in rows]
    return header, rows


def reasons(result: FitResult) -> list[str]:
    """One line per candidate: why it is, or is not, the answer."""
    width = max((len(r.type) for r in result.rows), default=0)
    return [f"{r.type:<{width}}  {r.reason}" for r in result.rows if r.reason]


def caption(result: FitResult) -> str:
    speed = f"{min(N_PROMPT, result.ctx)}-token prompt and {min(N_GEN, result.ctx)} generated tokens"
    gpu = "all layers" if result.gpu_layers < 0 else f"{result.gpu_layers} layers"
    memory = "peak resident memory" + (f" + GPU memory ({gpu} offloaded)" if result.gpu_layers else "")
    text = (f"{result.chunks} chunks of {result.ctx} tokens of {result.text}" if result.chunks
            else f"chunks of {result.ctx} tokens of {result.text}")
    base = f" (its PPL {result.base_ppl:.4f})" if result.base_ppl is not None else ""
    cached = sum(r.cached for r in result.rows)
    part = " — PARTIAL: interrupted, figures measured so far" if result.partial else ""
    return (f"memory: {memory} of a fresh process at --ctx {result.ctx}; speed: {speed} (as bench); quality: "
            f"{text} against {result.source}{base}. {result.seconds:.1f} s"
            + (f", {cached} of {len(result.rows)} read from earlier fits" if cached else "") + part)


def closing(result: FitResult) -> list[str]:
    if result.choice is None:
        return [f"no choice: {result.summary}"]
    return [f"choice: {result.summary}", f"make it: {result.command}"]


def markdown(result: FitResult) -> str:
    header, rows = cells(result)
    header = [*header, "reason"]
    rows = [[*line, r.reason] for line, r in zip(rows, result.rows)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in rows]
    return "\n".join([*lines, "", caption(result), "", *closing(result)]) + "\n"


CSV_FIELDS = ["type", "file", "size_bytes", "predicted_size_bytes", "peak_memory_bytes", "gpu_memory_bytes",
              "memory_bytes", "pp_tps", "tg_tps", "ppl", "mean_kld", "kld_p99", "same_top", "fits", "pareto",
              "choice", "reason"]


def csv_text(result: FitResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_FIELDS)
    for r in result.rows:
        values = {**{k: getattr(r, k, None) for k in CSV_FIELDS}, "choice": r.type == result.choice}
        w.writerow(["" if values[k] is None else values[k] for k in CSV_FIELDS])
    return buf.getvalue()
