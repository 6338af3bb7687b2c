"""Output helpers: JSON to stdout, human text to stdout, progress and notices to stderr.

Whatever goes to stderr (a notice, an error, the line of a llama.cpp abort) first ends the line text on
stdout left open and flushes it: `main` wraps sys.stdout in a `LineTracker`, the one place that knows
whether stdout's last character was a newline, so with `2>&1` an error never glues onto generated text.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ggufkit.units import human_bytes, human_count

if TYPE_CHECKING:
    from ggufkit.runtime.generate import DoneEvent

__all__ = ["LineTracker", "TextStream", "end_stdout_line", "first_clause", "fitted_table", "human_bytes", "human_count",
           "notice", "print_json", "result_json", "short_value", "stats_line", "table", "track_stdout"]


class LineTracker:
    """sys.stdout as it was, remembering whether its last text left a line open (and is unflushed)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.open_line = False
        self.pending = False

    def write(self, text: str) -> int:
        if text:
            self.open_line = text[-1:] not in ("\n", b"\n")
            self.pending = True
        return self.stream.write(text)

    def flush(self) -> None:
        self.pending = False
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, buffer, encoding...
        return getattr(self.stream, name)


def track_stdout() -> None:
    if not isinstance(sys.stdout, LineTracker):
        sys.stdout = LineTracker(sys.stdout)  # type: ignore[assignment]


def end_stdout_line() -> None:
    """End an open line on stdout and flush it: called before anything is written to stderr."""
    out = sys.stdout
    if not isinstance(out, LineTracker):
        return
    try:
        if out.open_line:
            out.write("\n")
        if out.pending:
            out.flush()
    except (OSError, ValueError):  # a closed pipe: stderr still gets its line
        pass


class TextStream:
    """Generated text to stdout, a piece at a time. On a terminal each piece shows at once; elsewhere (a
    pipe, a file) the pieces are flushed together at most every FLUSH_S seconds, so a reader still sees the
    text as it comes without a write system call per token."""

    FLUSH_S = 0.05

    def __init__(self) -> None:
        self.out = sys.stdout
        self.tty = self.out.isatty()
        self._last = time.perf_counter()
        self._open = False

    def write(self, text: str) -> None:
        if not text:
            return
        self.out.write(text)
        self._open = text[-1:] != "\n"
        if self.tty:
            self.out.flush()
            return
        now = time.perf_counter()
        if now - self._last >= self.FLUSH_S:
            self.out.flush()
            self._last = now

    def end(self) -> None:
        """End the text with a newline where it does not end with one (also in a pipe: with `2>&1` what
        follows on stderr starts its own line), and flush."""
        if self._open:
            self.out.write("\n")
            self._open = False
        self.out.flush()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def notice(message: str) -> None:
    end_stdout_line()
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


def fitted_table(rows: list[list[str]], header: list[str], width: int | None = None) -> str:
    """`table`, fitted to `width` (default: the terminal's when stdout is one; files and pipes get the whole
    table). Too wide, a last column of prose wraps within the room the others leave; else each row becomes
    a block, as in bench's table (cli/bench_table.py): its first cell, then `name value` pairs in lines."""
    import textwrap

    plain = table(rows, header)
    if width is None:
        width = terminal_width()
    if width is None or max(map(len, plain.splitlines())) <= width:
        return plain
    head = table([r[:-1] for r in rows], header[:-1]).splitlines()
    room = width - max(map(len, head)) - 2
    if room >= 24:  # the last column wraps beside the others
        pad = max(map(len, head))
        out = []
        for left, cell in zip(head, [header[-1], *(str(r[-1]) for r in rows)]):
            parts = textwrap.wrap(cell, room) or [""]
            out.append(f"{left:<{pad}}  {parts[0]}".rstrip())
            out += [" " * (pad + 2) + part for part in parts[1:]]
        return "\n".join(out)
    blocks = []
    for row in rows:
        packed, line = [], ""
        for h, v in zip(header[1:], row[1:]):
            if str(v) in ("", "-"):
                continue
            pair = f"{h} {v}"
            if line and 2 + len(line) + 3 + len(pair) > width:
                packed.append(line)
                line = ""
            line = f"{line} · {pair}" if line else pair
        packed += [line] if line else []
        lines = [str(row[0])] + [w for text in packed  # a path longer than a line is folded, as Rich folds it
                                 for w in textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="    ")]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def terminal_width() -> int | None:
    """The width of the terminal stdout shows on, or None when stdout is not a terminal."""
    import os

    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else None
    except (OSError, ValueError, AttributeError):
        return None


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
    if done.prompt_done:
        parts.append(f"prompt {done.n_prompt_eval} tokens" + (f" (+{reused} cached)" if reused else "")
                     + f" in {done.prompt_ms:.1f} ms, {done.prompt_tps:.1f} t/s")
    else:
        parts.append(f"prompt of {done.n_prompt_eval} tokens interrupted after {done.prompt_ms:.1f} ms")
    parts.append(f"generated {done.n_generated} tokens in {done.gen_ms:.1f} ms, {done.gen_tps:.1f} t/s "
                 f"({done.n_decoded} decoded)")
    parts.append(f"stop: {done.stop_reason}")
    return " | ".join(parts)


def result_json(done: DoneEvent, load_ms: float, warmup_ms: float) -> dict[str, Any]:
    """`run --json`: the documented result object."""
    return {
        "text": done.text,
        "stop_reason": done.stop_reason,
        "partial": done.stop_reason == "interrupted",  # Ctrl-C: the text so far
        "prompt_tokens": done.n_prompt,
        "prompt_tokens_evaluated": done.n_prompt_eval if done.prompt_done else 0,
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
