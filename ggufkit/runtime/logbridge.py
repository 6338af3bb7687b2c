"""Route llama.cpp's log (which arrives in fragments) to a Python function, one whole line at a time."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_keep_alive: list[object] = []  # llama.cpp calls the callback for the process's life: it must never be freed


def install(on_line: Callable[[int, str], None]) -> None:
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
