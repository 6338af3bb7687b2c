"""Output helpers: JSON to stdout, human text to stdout, progress and notices to stderr."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

from ggufkit.units import human_bytes, human_count

if TYPE_CHECKING:
    from ggufkit.runtime.generate import DoneEvent

__all__ = ["first_clause", "human_bytes", "human_count", "notice", "print_json", "result_json", "short_value", "stats_line",
           "table"]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def notice(message: str) -> None:
    sys.stderr.write(f"ggufkit: {message}\n")


def first_clause(reason: str) -> str:
    """A long reason cut for a table cell, before its aside or consequence ("current llama.cpp has no graph for
    GPT-J (the gptj ...), so no GGUF ..." -> "current llama.cpp has no graph for GPT-J"); --json keeps it whole."""
    return re.split(r" \(|, so ", reason, maxsplit=1)[0]


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain left-aligned table (Rich would cost more start-up time than inspect may spend)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)).rstrip() for r in [header, *rows])


def short_value(v: object, width: int = 120) -> str:
    """A metadata value on one line: long arrays (jsonable's {"length", "head"}) by count, long text cut."""
    if isinstance(v, dict) and "length" in v:
        return f"[{v['length']} items] {v['head']}..."
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def stats_line(done: DoneEvent, load_ms: float | None = None) -> str:
    """One generation's counts and speeds (`run --stats`, and after each chat reply)."""
    reused = done.n_prompt - done.n_prompt_eval
    parts = [] if load_ms is None else [f"load {load_ms:.1f} ms"]
    parts.append(f"prompt {done.n_prompt_eval} tokens" + (f" (+{reused} cached)" if reused else "")
                 + f" in {done.prompt_ms:.1f} ms, {done.prompt_tps:.1f} t/s")
    parts.append(f"generated {done.n_generated} tokens in {done.gen_ms:.1f} ms, {done.gen_tps:.1f} t/s "
                 f"({done.n_decoded} decoded)")
    parts.append(f"stop: {done.stop_reason}")
    return " | ".join(parts)


def result_json(done: DoneEvent, load_ms: float, warmup_ms: float) -> dict[str, Any]:
    """`run --json`: the documented result object."""
    return {
        "text": done.text,
        "stop_reason": done.stop_reason,
        "prompt_tokens": done.n_prompt,
        "prompt_tokens_evaluated": done.n_prompt_eval,
        "generated_tokens": done.n_generated,
        "generated_ids": done.tokens,
        "timings": {
            "load_ms": round(load_ms, 3),
            "warmup_ms": round(warmup_ms, 3),  # part of load_ms
            "prompt_ms": round(done.prompt_ms, 3),
            "prompt_tokens_per_s": round(done.prompt_tps, 2),
            "generation_ms": round(done.gen_ms, 3),
            "generation_tokens_per_s": round(done.gen_tps, 2),  # decoded_tokens / generation_ms
            "decoded_tokens": done.n_decoded,
        },
    }
