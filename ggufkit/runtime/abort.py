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

from ggufkit.errors import EXIT_FAILURE
from ggufkit.runtime import native

_first = threading.Lock()
_keep_alive: list[object] = []  # ggml keeps the pointer for the process's life
_context: list[str] = []


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
        line = f"ggufkit: error: {where}llama.cpp aborted: {text}\n"
        os.write(2, line.encode("utf-8", "replace"))
        os._exit(EXIT_FAILURE)

    callback = callback_type(on_abort)
    set_callback(callback)
    _keep_alive.append(callback)
    return True


def set_path(path: str | os.PathLike[str] | None) -> None:
    _context[:] = [os.fspath(path)] if path is not None else []
