"""Make a GGML_ASSERT abort, or a crash, inside llama.cpp end with one clear line instead of a bare core dump.

ggml calls its abort callback with the assertion text just before abort(). Running the whole model in
a child process would cost a second load (and a copy of every token over a pipe); instead the CLI
registers this callback, which writes `ggufkit: error: PATH: llama.cpp aborted: <assertion>` on
stderr and ends the process at once with exit status 1 (os._exit: nothing can be trusted after an
assert, so no cleanup runs; run and bench write no files that could be left half-done).

A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, or SIGABRT from an uncaught C++ exception) gets the
same treatment: the first load of a model installs handlers that write `ggufkit: error: COMMAND: PATH:
llama.cpp crashed (SIGSEGV: ...)` and end the process with exit status 1. The handler is Python code
called through ctypes from the signal: the crashing thread is inside a C call that released the GIL (or
holds it), so it can take it, write one line and exit; it does nothing that could wait on the broken
state. With --debug (GGUFKIT_DEBUG) the handlers are not installed: Python's faulthandler prints every
thread's traceback and the process dies of its signal, as a debugger expects.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import re
import signal
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
    """Report aborts and crashes as errors about `path`. Returns False where this llama.cpp build cannot
    report aborts."""
    set_path(path)
    install_crash_handlers()
    if _keep_alive:
        return True
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
    set_callback = native.symbol("ggml_set_abort_callback", ctypes.c_void_p, callback_type)
    if set_callback is None:
        return False

    def on_abort(message: bytes | None) -> None:
        if not _first.acquire(blocking=False):  # several ggml threads can assert at once: one speaks
            _wait_forever()
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


_FATAL = {
    signal.SIGSEGV: "segmentation fault", signal.SIGBUS: "bus error", signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "arithmetic fault", signal.SIGABRT: "aborted",
}
_signal_handlers: list[object] = []


def install_crash_handlers() -> bool:
    """Report a fatal signal as one line (see the module's docstring); once per process. Returns whether
    handlers are in place (not with --debug, which keeps faulthandler's tracebacks)."""
    if _signal_handlers:
        return True
    if os.environ.get("GGUFKIT_DEBUG"):
        faulthandler.enable(all_threads=True)
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    handler_type = ctypes.CFUNCTYPE(None, ctypes.c_int)

    def on_signal(signum: int) -> None:
        if not _first.acquire(blocking=False):
            _wait_forever()
        what = _FATAL.get(signum, "fatal signal")
        name = signal.Signals(signum).name
        where = f"{_context[0]}: " if _context else ""
        command = os.environ.get("GGUFKIT_COMMAND")
        notes = [n for n in (_safe(fn) for fn in _last_words) if n]
        message = (f"{command + ': ' if command else ''}{where}llama.cpp crashed ({name}: {what}); "
                   "run with --debug for the threads' tracebacks")
        os.write(2, f"ggufkit: error: {'; '.join([message, *notes])}\n".encode("utf-8", "replace"))
        os._exit(EXIT_FAILURE)

    handler = handler_type(on_signal)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, handler_type]
    for signum in _FATAL:
        libc.signal(signum, handler)
    _signal_handlers.append(handler)
    return True


def _wait_forever() -> None:
    while True:  # another thread is already writing the one line and ending the process
        time.sleep(1)


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


def guard(path: str | os.PathLike[str]) -> None:
    """What every model load calls: install the reports, naming `path` unless the command named its model."""
    install(path if not _context else _context[0])


def set_path(path: str | os.PathLike[str] | None) -> None:
    _context[:] = [os.fspath(path)] if path is not None else []
