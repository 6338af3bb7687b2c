"""Ctrl-C while a model generates: a request to stop that the generation honours within a token.

Python raises KeyboardInterrupt only between bytecodes, so one inside llama.cpp's C code would wait for
the call to return, and one inside a ctypes callback is printed and lost. Instead the first Ctrl-C sets
an Event: the generation loop checks it at every token, and llama.cpp's abort callback between the
operations of a prompt's graph (runtime/generate.py), so what was generated so far can still be shown,
counted and saved. A second Ctrl-C, or one while nothing generates, raises KeyboardInterrupt as usual.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class CtrlC:
    """Use as a context manager around the generation; `cancel` goes to the core, `armed` says whether a
    first Ctrl-C only requests a stop (a chat disarms it while it waits at its prompt)."""

    def __init__(self, armed: bool = True) -> None:
        self.cancel = threading.Event()
        self.armed = armed
        self._old: object = None

    def __enter__(self) -> CtrlC:
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.armed and not self.cancel.is_set():
            self.cancel.set()
        else:
            raise KeyboardInterrupt
