"""Run many `ggufkit` command lines in this one process (argv lists as JSON in argv[1]); print, as JSON, each
one's exit code, stdout, stderr and seconds. For the hostile corpus: the commands' start-up would otherwise dominate."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

from ggufkit.cli.app import main as ggufkit_main


def run(argv: list[str]) -> dict:
    err, out = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            ggufkit_main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps([run(r["argv"]) for r in json.loads(sys.argv[1])]))
