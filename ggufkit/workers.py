"""A few threads for streamed work: jobs that read, compute and write a slice each, at most a few in flight.

Used where a big file is written a slice at a time (convert's data section, sample models): each job
knows where its bytes go (pwrite at an offset), so jobs finish in any order. numpy's array loops,
ggml's C functions and the read/write system calls release the GIL, so threads use every core; the
bound on jobs in flight keeps memory flat whatever the file's size.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

MAX_WORKERS = 8  # beyond this the disk or the one thread drawing random numbers sets the pace


def default_workers() -> int:
    """One per CPU this process may use, at most MAX_WORKERS; GGUFKIT_WORKERS overrides (1: no threads)."""
    env = os.environ.get("GGUFKIT_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def run_jobs(jobs: Iterable[Callable[[], int]], workers: int | None = None,
             on_done: Callable[[int], None] | None = None) -> None:
    """Run each job (it returns a count, e.g. of bytes done, passed to `on_done` in this thread).

    `jobs` is consumed in this thread, so a generator may do ordered work (draw random numbers, read
    a header) between jobs. At most 2 x workers jobs are pending; the first job to fail stops the rest
    and its exception is raised here.
    """
    workers = workers or default_workers()
    if workers == 1:
        for job in jobs:
            n = job()
            if on_done is not None:
                on_done(n)
        return
    pending: deque[Future[int]] = deque()

    def settle(f: Future[int]) -> None:
        n = f.result()  # raises the job's exception
        if on_done is not None:
            on_done(n)

    with ThreadPoolExecutor(workers, thread_name_prefix="ggufkit") as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(job))
                while len(pending) >= 2 * workers:
                    settle(pending.popleft())
            while pending:
                settle(pending.popleft())
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def pwrite_all(fd: int, data: memoryview | bytes | np.ndarray, offset: int) -> None:
    """All of `data` at `offset` of `fd`, through this thread's pipe where Linux allows (vmsplice hands the
    buffer's pages to the pipe, splice copies them into the file's page cache inside the kernel), else
    with pwrite. The copy from user memory that pwrite makes costs 3 to 5 times the CPU of the kernel's
    own page-to-page copy on the virtual machines measured (docs/benchmarks-scale.md), and a conversion
    that writes gigabytes is that copy more than anything else."""
    view = memoryview(data).cast("B")
    if len(view) >= _SPLICE_MIN and _splice_into(fd, view, offset):
        return
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


_SPLICE_MIN = 1 << 16  # below this, one pwrite is as cheap
_local = threading.local()
_splice_ok = hasattr(os, "splice") and sys.platform == "linux"


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


@functools.lru_cache(maxsize=1)
def _vmsplice() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).vmsplice
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_ulong, ctypes.c_uint]
    fn.restype = ctypes.c_ssize_t
    return fn


def _pipe() -> tuple[int, int, int]:
    """This thread's pipe (read end, write end, capacity), made on first use and kept."""
    pipe = getattr(_local, "pipe", None)
    if pipe is None:
        r, w = os.pipe()
        try:
            size = fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MB, the usual most a user may ask
        except OSError:
            size = 1 << 16
        pipe = _local.pipe = (r, w, size)
    return pipe


def _splice_into(fd: int, view: memoryview, offset: int) -> bool:
    """Write `view` at `offset` through the pipe; False where splicing is not possible (nothing written).
    If the kernel refuses midway (a file system without splice), what the pipe holds and the rest are
    written with pwrite, and pwrite is used from then on."""
    global _splice_ok
    vmsplice = _vmsplice() if _splice_ok else None
    if vmsplice is None or view.readonly:
        return False
    r, w, size = _pipe()
    buf = (ctypes.c_char * len(view)).from_buffer(view)
    base, done = ctypes.addressof(buf), 0
    while done < len(view):
        iov = _Iovec(base + done, min(size, len(view) - done))
        n = vmsplice(w, ctypes.byref(iov), 1, 0)
        if n <= 0:
            _splice_ok = False
            break
        moved = 0
        try:
            while moved < n:  # splice copies the pages before it returns: the buffer may be reused after
                moved += os.splice(r, fd, n - moved, offset_dst=offset + done + moved)
        except OSError:
            _splice_ok = False
            rest = os.read(r, n - moved)  # the pipe must be empty for the next write
            pwrite_all(fd, rest, offset + done + moved)
        done += n
    del buf
    if done < len(view):
        pwrite_all(fd, view[done:], offset + done)
    return True
