"""Make a GGML_ASSERT abort inside llama.cpp end with one clear line instead of a bare core dump.

ggml calls its abort callback with the assertion text just before abort(). Running the whole model in
a child process would cost a second load (and a copy of every token over a pipe); instead the CLI
registers this callback, which writes `ggufkit: error: PATH: llama.cpp aborted: <assertion>` on
stderr and ends the process at once with exit status 1 (os._exit: nothing can be trusted after an
assert, so no cleanup runs; run and bench write no files that could be left half-done).
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import time
from collections.abc import Callable

from ggufkit.errors import EXIT_FAILURE
from ggufkit.runtime import native

_first = threading.Lock()
_keep_alive: list[object] = []  # ggml keeps the pointer for the process's life
_context: list[str] = []
# explain(text) -> the whole message, or None (runtime/rpc.py names a lost server); then the last words:
# best-effort hooks (a chat saves its transcript), each returning a note for the line or None
_explainers: list[Callable[[str], str | None]] = []
_last_words: list[Callable[[], str | None]] = []


def install(path: str | os.PathLike[str] | None = None) -> bool:
    """Report aborts as errors about `path`. Returns False where this llama.cpp build cannot."""
    set_path(path)
    if _keep_alive:
        return True
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
    set_callback = native.symbol("ggml_set_abort_callback", ctypes.c_void_p, callback_type)
    if set_callback is None:
        return False

    def on_abort(message: bytes | None) -> None:
        if not _first.acquire(blocking=False):  # several ggml threads can assert at once: one speaks
            while True:
                time.sleep(1)  # until the first one ends the process
        text = (message or b"").decode("utf-8", "replace").strip()
        text = re.sub(r"^\S*/([^/\s]+:\d+: )", r"\1", text)  # the build's source path says nothing to users
        where = f"{_context[0]}: " if _context else ""
        message = next((m for m in (_safe(fn, text) for fn in _explainers) if m), None)
        message = message or f"{where}llama.cpp aborted: {text}"
        notes = [n for n in (_safe(fn) for fn in _last_words) if n]
        line = f"ggufkit: error: {'; '.join([message, *notes])}\n"
        os.write(2, line.encode("utf-8", "replace"))
        os._exit(EXIT_FAILURE)

    callback = callback_type(on_abort)
    set_callback(callback)
    _keep_alive.append(callback)
    return True


def add_explainer(explain: Callable[[str], str | None]) -> None:
    """`explain(assertion text)` may return the whole message for the line (it then names what failed)."""
    _explainers.append(explain)


def add_last_words(hook: Callable[[], str | None]) -> None:
    """Run `hook` before the process ends on an abort (keep it short; it may return a note for the line)."""
    _last_words.append(hook)


def _safe(fn: Callable[..., str | None], *args: object) -> str | None:
    try:
        return fn(*args)
    except BaseException:  # noqa: BLE001 - nothing may stop the one line and the exit
        return None


def set_path(path: str | os.PathLike[str] | None) -> None:
    _context[:] = [os.fspath(path)] if path is not None else []
