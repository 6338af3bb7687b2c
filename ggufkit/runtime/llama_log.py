"""Where llama.cpp's log goes in this process: a buffer, never the terminal unless asked.

llama.cpp writes its log to stderr by default, which would spill into `ggufkit run`'s output. This keeps
recent lines (to explain a refusal in one line) and echoes them only when a sink is set (--verbose-llama).
A child process that wants the lines for itself (quantize's) routes them with `route`.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import deque
from collections.abc import Callable, Iterator

GGML_LOG_LEVEL_ERROR = 4  # ggml.h's enum ggml_log_level
GGML_LOG_LEVEL_WARN = 3

_recent: deque[tuple[int, str]] = deque(maxlen=200)
_total = [0]  # lines seen so far, to know which recent lines a capture() saw
_sink: list[Callable[[str], None]] = []
_installed = False
_keep_alive: list[object] = []  # llama.cpp calls the callback for the process's life: it must never be freed


def route(on_line: Callable[[int, str], None]) -> None:
    """Send llama.cpp's log to `on_line(level, line)` one whole line at a time (it arrives in fragments),
    instead of wherever it went before."""
    import llama_cpp

    pending: list[str] = []

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        pending.append(text.decode("utf-8", "replace"))
        joined = "".join(pending)
        if "\n" not in joined:
            return
        *lines, rest = joined.split("\n")
        pending[:] = [rest] if rest else []
        for line in lines:
            on_line(int(level), line)

    _keep_alive.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def _on_line(level: int, line: str) -> None:
    _recent.append((level, line))
    _total[0] += 1
    if _sink:
        _sink[0](line)


def ensure_installed() -> None:
    global _installed
    if not _installed:
        route(_on_line)
        _installed = True


def echo_to(sink: Callable[[str], None] | None) -> None:
    """Also pass every llama.cpp log line to `sink` (None: keep them buffered only), beginning with what it
    logged before its log was routed here (loadorder.EARLY_LOG: the devices a CUDA build found, ...)."""
    from ggufkit.loadorder import EARLY_LOG

    ensure_installed()
    _sink[:] = [sink] if sink else []
    if sink:
        for line in "".join(EARLY_LOG).splitlines():
            sink(line)


def recent() -> list[str]:
    return [line for _, line in _recent]


class Capture:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def reason(self) -> str:
        """': <the last error-ish line>' or '' — to append to a one-line error message."""
        wanted = [ln for lvl, ln in self.lines if lvl >= GGML_LOG_LEVEL_WARN or "error" in ln.lower()]
        text = (wanted or [""])[-1].strip()
        for prefix in ("llama_model_load: error loading model: ", "llama_model_load: "):
            text = text.removeprefix(prefix)
        return f": {text[:300]}" if text else ""


@contextlib.contextmanager
def capture() -> Iterator[Capture]:
    """Collect the log lines written during the block."""
    ensure_installed()
    cap = Capture()
    start = _total[0]
    try:
        yield cap
    finally:
        n = min(_total[0] - start, len(_recent))
        cap.lines = list(_recent)[len(_recent) - n:] if n else []


@contextlib.contextmanager
def stderr_text() -> Iterator[list[str]]:
    """Catch what C code writes straight to fd 2 during the block (llama.cpp's grammar parser does)."""
    import os
    import sys
    import tempfile

    sys.stderr.flush()
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read(1 << 16).decode("utf-8", "replace"))
