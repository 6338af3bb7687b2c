"""A persistent ggml CPU threadpool for a context, as llama-bench and llama-cli attach one.

Without it ggml builds a throwaway pool for every graph, i.e. creates and joins threads on every
generated token. llama-cpp-python does not bind these calls yet, so they are declared here.

In llama-cpp-python's builds (GGML_OPENMP, libgomp) ggml runs the graph in an OpenMP team: the pool's
`poll`, `prio` and `strict_cpu` are then unused, and how threads wait at ggml's barriers is libgomp's
spin count, which openmp.py sets. Under load the pool's thread count is what matters (cpuload.py).
"""

from __future__ import annotations

import ctypes
from ggufkit.runtime import native

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
    pool_p = ctypes.c_void_p
    new = native.symbol("ggml_threadpool_new", pool_p, ctypes.POINTER(ThreadpoolParams))
    free = native.symbol("ggml_threadpool_free", None, pool_p)
    attach = native.symbol("llama_attach_threadpool", None, ctypes.c_void_p, pool_p, pool_p)
    if new is None or free is None or attach is None:
        _fns["new"] = None
        return False
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
