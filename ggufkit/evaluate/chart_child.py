"""The process that draws a chart (evaluate/plot.apart): started with GGUFKIT_NO_LLAMA=1, so llama.cpp's
libraries never enter it. The request names the drawing function, the output and the data (pickled by
the parent, which started this process: trusted)."""

from __future__ import annotations

import base64
import importlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ggufkit.runtime.child import child_main


def work(req: dict[str, Any], _emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    module, name = req["draw"].split(":")
    data = pickle.loads(base64.b64decode(req["data"]))
    getattr(importlib.import_module(module), name)(data, Path(req["out"]))
    return {}


if __name__ == "__main__":
    raise SystemExit(child_main(work))
