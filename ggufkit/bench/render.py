"""A bench run as text: Markdown, CSV, JSON (the documented schema) and JSON lines. Returns strings only.

The Rich table lives in cli/bench.py; it shows the same `columns()` as the Markdown table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields

from ggufkit.bench.options import BenchFormat
from ggufkit.bench.results import BenchRun, Row
from ggufkit.units import human_bytes, human_count

# CSV carries every scalar field of a row (the per-repetition samples are in JSON only).
CSV_FIELDS = tuple(f.name for f in fields(Row) if not f.name.endswith("_samples_ns"))


def columns(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the human table (llama-bench's columns plus load time and memory)."""
    any_pp = any(r.n_prompt for r in run.rows)
    any_tg = any(r.n_gen for r in run.rows)
    any_error = any(r.error for r in run.rows)
    n_prompt = run.rows[0].n_prompt if run.rows else 0
    n_gen = run.rows[0].n_gen if run.rows else 0
    header = ["model", "arch", "type", "size", "params", "backend", "ngl", "mmap", "threads", "batch",
              "load ms", "peak RSS MiB"]
    header += [f"pp{n_prompt} t/s"] if any_pp else []
    header += [f"tg{n_gen} t/s"] if any_tg else []
    header += ["error"] if any_error else []
    cells = []
    for r in run.rows:
        line = [r.model, r.architecture or "?", r.file_type or "?", human_bytes(r.size_bytes), human_count(r.parameters, sep=" "),
                _backend(r), _ngl(r.gpu_layers), "on" if r.mmap else "off", str(r.threads), str(r.batch),
                _num(r.load_ms, 1), _num(r.peak_rss_mib, 1)]
        line += [_speed(r, r.pp_tps, r.pp_sd)] if any_pp else []
        line += [_speed(r, r.tg_tps, r.tg_sd)] if any_tg else []
        line += [r.error or ""] if any_error else []
        cells.append(line)
    return header, cells


def render(run: BenchRun, fmt: BenchFormat) -> str:
    if fmt in (BenchFormat.MD, BenchFormat.TABLE):
        return to_markdown(run)
    if fmt == BenchFormat.CSV:
        return to_csv(run)
    if fmt == BenchFormat.JSON:
        return json.dumps(run.to_dict(), indent=2) + "\n"
    if fmt == BenchFormat.JSONL:
        return "".join(json.dumps(asdict(r)) + "\n" for r in run.rows)
    raise ValueError(fmt)


def to_markdown(run: BenchRun) -> str:
    header, cells = columns(run)
    numeric = {i for i, h in enumerate(header) if h not in ("model", "arch", "type", "backend", "mmap", "error")}
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("--:" if i in numeric else "---" for i in range(len(header))) + " |"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    return "\n".join(out) + "\n"


def to_csv(run: BenchRun) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in run.rows:
        w.writerow({k: ("" if v is None else ",".join(v) if isinstance(v, list) else v)
                    for k, v in asdict(r).items() if k in CSV_FIELDS})
    return buf.getvalue()


def _speed(r: Row, mean: float | None, sd: float | None) -> str:
    if r.error:
        return "error"
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {sd or 0:.2f}"


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ngl(n: int) -> str:
    return "all" if n < 0 else str(n)



def _backend(r: Row) -> str:
    """The backend, with the servers of an RPC row as llama.cpp names its registrations: RPC[host:port,...]."""
    return f"{r.backend}[{','.join(r.rpc_servers)}]" if r.rpc_servers else r.backend
