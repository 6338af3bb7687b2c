"""A few threads for streamed work: jobs that read, compute and write a slice each, at most a few in flight.

Used where a big file is written a slice at a time (convert's data section, sample models): each job
knows where its bytes go (pwrite at an offset), so jobs finish in any order. numpy's array loops,
ggml's C functions and the read/write system calls release the GIL, so threads use every core; the
bound on jobs in flight keeps memory flat whatever the file's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

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


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """All of `data` at `offset` of `fd` (os.pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
