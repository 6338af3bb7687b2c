"""Run a command and measure that one child: exit status, output, wall time and its own peak RSS.

os.wait4 reports the peak RSS of exactly the process it reaps (getrusage(RUSAGE_CHILDREN) would give
the largest of every child ever reaped, blaming a command for an earlier one's memory). It is an upper
bound: Linux carries the spawning process's high-water mark into the child at exec, so a parent that
grew (the fuzz harness at 5.5 GB once) shows in every child's figure. Keep the measuring process small.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Measured:
    returncode: int  # negative: killed by that signal
    out: str
    err: str
    seconds: float
    peak_rss: int  # bytes
    timed_out: bool


def run_measured(cmd: list[str], timeout: float) -> Measured:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                        seconds, usage.ru_maxrss * 1024, seconds >= timeout)
