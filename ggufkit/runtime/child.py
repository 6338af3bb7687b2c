"""Run llama.cpp work in a child Python process, so a GGML_ASSERT abort becomes an error, not a dead CLI.

The child speaks JSON lines on stdout ({"event": ...}); llama.cpp's log goes to its stderr, which the
parent keeps to quote the last meaningful line when the child fails.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from ggufkit.errors import GgufkitError, LlamaFailure


class StartedChild:
    """A child started ahead of its request, so its imports (llama_cpp: ~0.1 s) overlap the caller's checks."""

    def __init__(self, module: str, env: dict[str, str] | None = None):
        self.module = module
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
            # GGML_NO_BACKTRACE: on an abort ggml forks to print a backtrace; in a process with worker
            # threads that fork can deadlock (malloc lock), and the parent would wait forever.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "GGML_NO_BACKTRACE": "1", **(env or {})},
        )

    def cancel(self) -> None:
        """Stop a child that will get no request (the caller's checks failed)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            if f is not None:
                f.close()


def run_child(module: str, request: dict[str, Any], on_event: Callable[[dict[str, Any]], None] | None = None,
              path: str | None = None, started: StartedChild | None = None) -> dict[str, Any]:
    """Run `python -m module` (or the already `started` one) with `request` on stdin; return its final
    {"event": "done"} payload."""
    started = started or StartedChild(module)
    with started.err as err:
        proc = started.proc
        assert proc.stdin is not None and proc.stdout is not None
        result: dict[str, Any] | None = None
        failure: str | None = None
        try:
            proc.stdin.write(json.dumps(request).encode())
            proc.stdin.close()
            for raw in _lines(proc.stdout.fileno()):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if event.get("event") == "done":
                    result = event
                elif event.get("event") == "error":
                    failure = event.get("message")
                elif on_event is not None:
                    on_event(event)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        log = err.read().decode("utf-8", "replace")
    if rc == 0 and result is not None:
        return result
    if failure:
        raise GgufkitError(failure, path)
    raise LlamaFailure(_describe_death(rc, log), path)


def _lines(fd: int) -> Iterator[bytes]:
    """The lines a child writes, read so that this thread wakes at least every 0.1 s: a Ctrl-C that another
    thread took (OpenBLAS's, tqdm's) is heard then, not only at the child's next line."""
    pending = b""
    while True:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines


def _describe_death(rc: int, log: str) -> str:
    if rc < 0:
        try:
            how = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"killed by signal {-rc}"
    else:
        how = f"exited with status {rc}"
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    hint = next((ln for ln in reversed(lines) if "GGML_ASSERT" in ln or "error" in ln.lower()), lines[-1] if lines else "")
    return f"llama.cpp failed ({how})" + (f": {hint[:300]}" if hint else "")


def child_main(work: Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], dict[str, Any]]) -> int:
    """Body of a child module's entry point: read the request, do the work, report one result line.

    Returns the process's exit status; the module's `__main__` block exits with it."""

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    request = json.loads(sys.stdin.read())
    try:
        result = work(request, emit)
    except GgufkitError as e:
        emit({"event": "error", "message": e.message})
        return 1
    emit({"event": "done", **result})
    return 0
