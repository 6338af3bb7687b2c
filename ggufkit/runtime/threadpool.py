"""A persistent ggml CPU threadpool for a context, as llama-bench and llama-cli attach one.

Without it ggml builds a throwaway pool for every graph, i.e. creates and joins threads on every
generated token. llama-cpp-python does not bind these calls yet, so they are declared here.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

GGML_MAX_N_THREADS = 512  # ggml.h
DEFAULT_POLL = 50  # ggml_threadpool_params_init's default


class ThreadpoolParams(ctypes.Structure):
    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


_fns: dict[str, object] = {}


def _bind() -> bool:
    if _fns:
        return bool(_fns.get("new"))
    import llama_cpp
    import llama_cpp.llama_cpp as low

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    cpu = next((lib_dir / n for n in ("libggml-cpu.so", "libggml-cpu.dylib", "ggml-cpu.dll") if (lib_dir / n).exists()), None)
    llama = getattr(low, "_lib", None)
    try:
        cpu_lib = ctypes.CDLL(str(cpu)) if cpu else None
        if cpu_lib is None or llama is None:
            raise OSError
        new, free = cpu_lib.ggml_threadpool_new, cpu_lib.ggml_threadpool_free
        attach = llama.llama_attach_threadpool
    except (OSError, AttributeError):
        _fns["new"] = None
        return False
    new.argtypes, new.restype = [ctypes.POINTER(ThreadpoolParams)], ctypes.c_void_p
    free.argtypes, free.restype = [ctypes.c_void_p], None
    attach.argtypes, attach.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p], None
    _fns.update(new=new, free=free, attach=attach)
    return True


def attach(ctx: object, n_threads: int) -> int | None:
    """Create a pool of `n_threads` and attach it to `ctx` for both generation and prompt batches.

    Returns the pool (free it with `free` after the context), or None where this build cannot.
    """
    if n_threads <= 1 or not _bind():
        return None
    params = ThreadpoolParams(n_threads=n_threads, prio=0, poll=DEFAULT_POLL, strict_cpu=False, paused=False)
    pool = _fns["new"](ctypes.byref(params))
    if not pool:
        return None
    ctx_ptr = ctypes.cast(ctx, ctypes.c_void_p) if not isinstance(ctx, int) else ctypes.c_void_p(ctx)
    _fns["attach"](ctx_ptr, pool, None)
    return pool


def free(pool: int | None) -> None:
    if pool:
        _fns["free"](pool)
