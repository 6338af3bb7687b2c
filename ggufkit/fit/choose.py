"""The answer: the candidate with the lowest mean KLD that meets every budget, why each other is not it,
and which candidates are on the Pareto front of memory against mean KLD."""

from __future__ import annotations

import shlex

from ggufkit.fit.result import Budgets, FitResult, Row
from ggufkit.units import human_bytes


def over_budgets(row: Row, b: Budgets) -> list[str]:
    """Each budget the row breaks, as a phrase; [] when it meets them all."""
    out = []
    if row.skipped:
        assert b.max_memory is not None and row.predicted_size_bytes is not None
        return [f"its file alone is {human_bytes(row.predicted_size_bytes)}, over --max-memory "
                f"{human_bytes(b.max_memory)}: skipped"]
    mem = row.memory_bytes
    if b.max_memory is not None and mem is not None and mem > b.max_memory:
        out.append(f"needs {human_bytes(mem)} of memory, {human_bytes(mem - b.max_memory)} over --max-memory")
    if b.min_speed is not None and row.tg_tps is not None and row.tg_tps < b.min_speed:
        out.append(f"generates {row.tg_tps:.1f} t/s, under --min-speed {b.min_speed:g}")
    if b.max_kld is not None and row.mean_kld is not None and row.mean_kld > b.max_kld:
        out.append(f"mean KLD {row.mean_kld:.6f}, over --max-kld {b.max_kld:g}")
    return out


def pareto(rows: list[Row]) -> None:
    """Mark the rows no other row beats on both memory and mean KLD (equal on one, better on the other)."""
    scored = [r for r in rows if r.memory_bytes is not None and r.mean_kld is not None]
    for r in rows:
        r.pareto = r in scored and not any(
            o.memory_bytes <= r.memory_bytes and o.mean_kld <= r.mean_kld  # type: ignore[operator]
            and (o.memory_bytes < r.memory_bytes or o.mean_kld < r.mean_kld)  # type: ignore[operator]
            for o in scored if o is not r)


def choose(result: FitResult, imatrix: str | None = None) -> None:
    """Set every row's fits and reason, the Pareto marks, the choice, the summary and the command."""
    b = result.budgets
    rows = result.rows
    pareto(rows)
    for r in rows:
        broken = over_budgets(r, b)
        r.fits = False if broken else (True if r.measured else None)
        r.reason = "; ".join(broken) if broken else ("" if r.measured else "not measured (interrupted)")
    fitting = sorted((r for r in rows if r.fits), key=lambda r: (r.mean_kld, r.memory_bytes))
    result.choice = fitting[0].type if fitting else None
    if fitting:
        best = fitting[0]
        best.reason = "lowest mean KLD within the budgets" if b.given() else "lowest mean KLD (no budget given)"
        for r in fitting[1:]:
            r.reason = f"fits, but loses more: mean KLD {r.mean_kld:.6f} against {best.mean_kld:.6f}"
        result.summary = f"{best.type}: {best.reason}"
        result.command = command(result.source, best.type, imatrix)
    elif result.partial and not any(r.fits is False for r in rows if r.measured):
        result.summary = "interrupted before any candidate was measured"
    else:
        result.summary = "nothing meets the budgets" + closest(rows, b)


def closest(rows: list[Row], b: Budgets) -> str:
    """'; the closest, Q2_K, needs --max-memory 130.20 MiB': the candidate that needs the budgets moved
    least (by ratio), and what it needs."""
    measured = [r for r in rows if r.measured]
    if not measured:  # every file alone is over the memory budget: the smallest one is closest
        small = min((r for r in rows if r.predicted_size_bytes), key=lambda r: r.predicted_size_bytes or 0,
                    default=None)
        if small is None:
            return ""
        return (f"; the smallest, {small.type}, needs --max-memory above {human_bytes(small.predicted_size_bytes or 0)}"
                " for its file alone")

    def needs(r: Row) -> list[tuple[float, str]]:
        out = []
        if b.max_memory is not None and r.memory_bytes > b.max_memory:  # type: ignore[operator]
            out.append((r.memory_bytes / b.max_memory, f"--max-memory {human_bytes(r.memory_bytes or 0)}"))
        if b.min_speed is not None and r.tg_tps < b.min_speed:  # type: ignore[operator]
            out.append((b.min_speed / max(r.tg_tps or 0, 1e-9), f"--min-speed {r.tg_tps:.1f}"))
        if b.max_kld is not None and r.mean_kld > b.max_kld:  # type: ignore[operator]
            out.append((r.mean_kld / b.max_kld if b.max_kld else float("inf"), f"--max-kld {r.mean_kld:.6f}"))
        return out

    best = min(measured, key=lambda r: max(x for x, _ in needs(r)))
    return f"; the closest, {best.type}, needs {' and '.join(text for _, text in needs(best))}"


def command(source: str, type_name: str, imatrix: str | None) -> str:
    """The `ggufkit quantize` line that makes the chosen file (beside the source, named as quantize names
    children: NAME-TYPE.gguf)."""
    line = ["ggufkit", "quantize", source, "-t", type_name.lower()]
    return shlex.join(line + (["--imatrix", imatrix] if imatrix else []))
