"""Whether several models fit in memory together (`run A B ...`), from `inspect`'s estimates.

Each model's estimate (formats/summary.py: weights + an f16 KV cache of its context + a compute margin)
is split between GPU and RAM by the share of its layers offloaded, and the sums are compared with what
is free now: RAM (/proc/meminfo's MemAvailable, which counts the page cache a mapped model reuses) and
the local GPUs' free memory as ggml reports it. Devices behind --rpc are not asked (that would connect
to them); llama.cpp's own refusal names them. GGUFKIT_ONE_AT_A_TIME=1 forces one at a time (tests; a
machine whose free memory misleads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gguf.constants import Keys

from ggufkit.formats.gguf_file import GgufFile
from ggufkit.formats.summary import summarize_model
from ggufkit.runtime.settings import RunSettings
from ggufkit.units import human_bytes

ONE_AT_A_TIME_ENV = "GGUFKIT_ONE_AT_A_TIME"


@dataclass
class LoadPlan:
    together: bool
    ram_need: int  # bytes the models need in RAM together (the part not offloaded)
    gpu_need: int  # bytes on this machine's GPUs together
    ram_free: int | None  # None: unknown here (then it is not what decides)
    gpu_free: int | None
    reason: str | None = None  # why one at a time (the one notice)


def plan(models: Sequence[tuple[GgufFile, RunSettings]], environ: Mapping[str, str] | None = None) -> LoadPlan:
    """Together when the estimates fit what is free (or free memory is unknown), else one at a time."""
    env = os.environ if environ is None else environ
    offload = any(s.n_gpu_layers != 0 and not s.rpc for _, s in models)
    gpu_free = _gpu_free() if offload else None
    ram_need = gpu_need = 0
    for g, s in models:
        total = _estimate(g, s)
        offloaded = int(total * _offloaded_share(g, s)) if s.rpc or gpu_free is not None else 0
        ram_need += total - offloaded
        if not s.rpc:  # with --rpc the offloaded part is on the servers' devices (and local GPUs): not asked
            gpu_need += offloaded
    ram_free = _ram_free()
    p = LoadPlan(True, ram_need, gpu_need, ram_free, gpu_free)
    if env.get(ONE_AT_A_TIME_ENV, "") not in ("", "0"):
        p.together, p.reason = False, f"{ONE_AT_A_TIME_ENV} is set: loading the models one at a time"
    elif ram_free is not None and ram_need > ram_free:
        p.together, p.reason = False, _why("RAM", ram_need, ram_free)
    elif gpu_free is not None and gpu_need > gpu_free:
        p.together, p.reason = False, _why("GPU memory", gpu_need, gpu_free)
    return p


def _why(what: str, need: int, free: int) -> str:
    return (f"the models need about {human_bytes(need)} of {what} together and {human_bytes(free)} is free: "
            "loading them one at a time, each when it answers")


def _estimate(g: GgufFile, s: RunSettings) -> int:
    """`inspect`'s estimate at the context the run will ask for (0: the model's own)."""
    ctx = s.ctx or g.arch_kv(Keys.LLM.CONTEXT_LENGTH) or RunSettings.ctx
    m = summarize_model(g, int(ctx)).memory
    return m.total_bytes if m is not None else sum(t.nbytes for t in g.tensors)


def _offloaded_share(g: GgufFile, s: RunSettings) -> float:
    """The part of the model --gpu-layers offloads: its layers, the output layer counting as one more."""
    n = s.n_gpu_layers
    if n == 0:
        return 0.0
    layers = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    if n < 0 or not isinstance(layers, int) or layers <= 0:
        return 1.0
    return min(1.0, n / (layers + 1))


def _gpu_free() -> int | None:
    """Free memory of the local GPUs together; None where there is none (the run then stays on the CPU)."""
    import llama_cpp

    from ggufkit.errors import GgufkitError
    from ggufkit.runtime import rpc

    llama_cpp.llama_backend_init()  # as model.load does before it asks ggml for devices
    try:
        gpus = rpc.local_gpus()
    except GgufkitError:
        return None
    return sum(d.free for d in gpus) if gpus else None


def _ram_free() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
