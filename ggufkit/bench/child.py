"""Child-process side of one bench configuration (`python -m ggufkit.bench.child`): load, time, report.

Its own process, started by exec, so load time is a cold llama.cpp load in this interpreter and the
peak RSS (VmHWM, reset by exec) is this configuration's alone. With layers offloaded it also reports the
device memory the load and the tests took (`gpu.py`).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ggufkit.errors import LlamaFailure
from ggufkit.runtime.child import child_main

_LOAD_ERROR = "error loading model: "


def rss_bytes(key: str = "VmHWM") -> int:
    """Peak (VmHWM) or current (VmRSS) resident set of this process, in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def work(req: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    from ggufkit.runtime import openmp

    # before llama.cpp loads: how its threads wait, for these threads on the CPUs the parent found free
    openmp.configure(req["threads"], req.get("free_cpus", float(req["threads"])))
    from ggufkit.bench.measure import Bencher
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams

    from ggufkit.bench import gpu

    base = rss_bytes("VmRSS")
    device = gpu.DeviceMemory() if req["gpu_layers"] else None  # before load: the devices' free memory
    emit({"event": "progress", "stage": "load"})
    tests = [(name, method, n, warm) for name, method, n, warm in
             (("pp", "prompt", req["n_prompt"], None), ("tg", "generate", req["n_gen"], 1)) if n > 0]
    per_test = not req["n_ctx"]  # llama-bench sizes a context to each test: speed depends on it on a GPU
    params = LoadParams(path=Path(req["path"]), n_ctx=req["n_ctx"] or tests[0][2], n_threads=req["threads"],
                        n_batch=req["batch"], n_gpu_layers=req["gpu_layers"], use_mmap=req["mmap"],
                        warmup=False,  # each test warms up on its own shapes (Bencher.measure), as llama-bench
                        rpc=tuple(req.get("rpc") or ()), tensor_split=_split(req.get("tensor_split")))
    if params.rpc:  # a server lost mid-test: one line naming it on stderr, which the parent quotes
        from ggufkit.runtime import abort

        abort.install(params.path)
    result: dict[str, Any] = {"base_rss_bytes": base}
    try:
        model = load(params)
    except LlamaFailure as e:
        raise LlamaFailure(_load_reason(e.message), params.path) from None
    with model:
        result["load_ms"] = model.load_ms
        result["warnings"] = model.warnings
        reps = req["reps"]
        for k, (name, method, n, warm) in enumerate(tests):
            if per_test and k > 0:
                model.renew_context(n)
            bench = Bencher(model)
            emit({"event": "progress", "stage": f"{name} warm-up"})
            speed = bench.measure(getattr(bench, method), n, reps, warmup_tokens=warm,
                                  on_rep=lambda i, name=name: emit({"event": "progress", "stage": name, "rep": i, "reps": reps}))
            result[name] = {"tokens": n, "n_ctx": model.n_ctx, "samples_ns": speed.samples_ns, "mean": speed.mean,
                            "sd": speed.sd}
        if device is not None:  # the model still loaded, after the tests: what the devices gave this process
            result.update(device.used())
    result["peak_rss_bytes"] = rss_bytes()
    return result


def _split(text: str | None) -> tuple[float, ...]:
    from ggufkit.runtime.rpc import parse_tensor_split

    return parse_tensor_split(text)


def _load_reason(message: str) -> str:
    """llama.cpp's own reason ("missing tensor 'x'") rather than its last, generic log line."""
    from ggufkit.runtime import llama_log

    why = next((ln.split(_LOAD_ERROR, 1)[1].strip() for ln in reversed(llama_log.recent()) if _LOAD_ERROR in ln), "")
    return f"llama.cpp could not load the model: {why}" if why else message


if __name__ == "__main__":
    raise SystemExit(child_main(work))
