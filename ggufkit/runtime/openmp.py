"""How ggml's threads wait for each other, chosen before llama.cpp's libraries are loaded.

llama-cpp-python builds ggml with OpenMP (its libraries link libgomp): ggml's barriers are then
`#pragma omp barrier`, and the ggml threadpool's `poll` level is unused. libgomp's default makes a
thread that reaches a barrier spin up to 300,000 rounds before it sleeps. While every thread has a
CPU of its own that is the fastest wait (a barrier is met within microseconds). When there are more
threads than free CPUs, a thread waits at every barrier for one that is descheduled, spinning away
the time slice the other needs: on 2 cores beside one busy process, `-t 2` generated 4-8 t/s where
`-t 1` made 50-200 (docs/benchmarks.md, "Speed under load"). A thread that spins only ~100 rounds and then
sleeps lets the descheduled one run: measured there, `-t 2` then made 64-175 t/s. On an idle machine
the same short spin costs ~35 % (threads fall asleep between the operations of a token), so it is
set only when the threads outnumber the free CPUs (cpuload.py), i.e. when a `--threads` given by
the user asks for more than the machine has free; the default thread count never does.

libgomp reads its environment once, when it is loaded with llama.cpp's libraries, so this runs before
they load — before the first import of numpy, which loads them (ggufkit/loadorder.py) — in the process
that runs the model. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from ggufkit import loadorder

CROWDED_SPIN_COUNT = "100"


def crowded(n_threads: int, free_cpus: float) -> bool:
    """Whether `n_threads` outnumber the CPUs that are free (as cpuload.threads_for counts them)."""
    from ggufkit.runtime.cpuload import allowed_cpus, threads_for

    return n_threads > 1 and n_threads > threads_for(free_cpus, len(allowed_cpus()))


def configure(n_threads: int, free_cpus: float, environ: MutableMapping[str, str] | None = None) -> str | None:
    """Set libgomp's spin count for `n_threads` threads on a machine with `free_cpus` free; return it, or
    None when the default stays (enough free CPUs, the user chose a policy, or llama.cpp is loaded already)."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env or (environ is None and loadorder.loaded()):
        return None
    if not crowded(n_threads, free_cpus):
        return None
    env["GOMP_SPINCOUNT"] = CROWDED_SPIN_COUNT
    return CROWDED_SPIN_COUNT
