"""The size/quality table of an evaluation, as rows for a terminal, Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ggufkit.evaluate.perplexity import EvalResult
from ggufkit.units import human_bytes

HEADER = ["model", "size", "bpw", "PPL", "ln(PPL/base)", "mean KLD", "99% KLD", "same top", "RMS Δp", "t/s"]


def rows(r: EvalResult) -> list[list[str]]:
    out = []
    for m in r.models:
        v = m.vs_base
        out.append([
            Path(m.path).name, human_bytes(m.file_size), f"{m.bits_per_weight:.2f}", f"{m.ppl:.4f} ± {m.ppl_err:.4f}",
            "base" if v is None else f"{v['ln_ppl_ratio']:+.5f}",
            "-" if v is None else f"{v['kld_mean']:.6f} ± {v['kld_err']:.6f}",
            "-" if v is None else f"{v['kld_p99']:.5f}",
            "-" if v is None else f"{100 * v['same_top']:.2f} %",
            "-" if v is None else f"{100 * v['dp_rms']:.3f} %",
            f"{m.tokens_per_second:.1f}",
        ])
    return out


def caption(r: EvalResult) -> str:
    part = f" — PARTIAL: interrupted after {r.chunks} of {r.chunks_total} chunks" if r.partial else ""
    return (f"{r.chunks} chunks of {r.ctx} tokens ({r.chunks * (r.ctx - r.ctx // 2 - 1)} scored) of {r.tokens} "
            f"tokens from {r.text}; BOS {'added' if r.add_bos else 'not added'}{part}")


def markdown(r: EvalResult) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(r)]
    return "\n".join(lines) + f"\n\n{caption(r)}\n"


def csv_text(r: EvalResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "file_size", "bits_per_weight", "ppl", "ppl_err", "ln_ppl_ratio", "kld_mean", "kld_err",
                "kld_p99", "kld_max", "same_top", "dp_rms", "tokens_per_second"])
    for m in r.models:
        v = m.vs_base or {}
        w.writerow([m.path, m.file_size, f"{m.bits_per_weight:.4f}", m.ppl, m.ppl_err, v.get("ln_ppl_ratio", ""),
                    v.get("kld_mean", ""), v.get("kld_err", ""), v.get("kld_p99", ""), v.get("kld_max", ""),
                    v.get("same_top", ""), v.get("dp_rms", ""), f"{m.tokens_per_second:.2f}"])
    return buf.getvalue()


def as_json(r: EvalResult) -> dict[str, Any]:
    return json_safe(asdict(r))


def json_safe(x: Any) -> Any:
    """NaN (not JSON) as null, in nested dicts and lists."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x
