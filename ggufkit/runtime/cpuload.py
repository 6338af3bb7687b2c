"""How many of the CPUs this process may use are free right now: the default thread count.

ggml splits every operation across its threads and waits at a barrier after each one, so a token
takes as long as its slowest thread. A thread that shares its core with another busy process gets
half the core, and every barrier waits for it: on 2 cores with one busy process beside it, 2
threads generate ~10x slower than 1 (measured: docs/benchmarks.md, "Speed under load"). So the default is the
number of allowed CPUs that are free, measured as llama.cpp's tools do not: per allowed CPU, the
busy time in /proc/stat over a short window, minus this process's own CPU time and that of the children
it has waited for (the window runs while the CLI imports and reads the model, so it mostly costs nothing;
in `fit` it spans quantizing in child processes, which must not read as somebody else's load). A window
that saw load is confirmed by a second, quiet one (measured_free says why).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

MIN_WINDOW_S = 0.1  # /proc/stat counts in 10 ms ticks: 0.1 s on 2 CPUs is 20 ticks
FREE_SHARE = 0.7  # a CPU counts as free when others leave >= 70 % of it idle (floor(free + 0.3))
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    busy: float | None  # seconds the allowed CPUs were busy since boot; None where /proc/stat is missing
    own: float  # this process's CPU seconds (all threads) and its waited-for children's


def _busy_seconds(cpus: list[int]) -> float | None:
    wanted = {f"cpu{c}" for c in cpus}
    busy = 0
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].decode() in wanted:
                    # user nice system idle iowait irq softirq steal: all but idle/iowait are unavailable to us
                    v = [int(x) for x in parts[1:9]]
                    busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    except (OSError, ValueError, IndexError):
        return None
    return busy / _TICK


def snapshot() -> Snapshot:
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return Snapshot(time.monotonic(), _busy_seconds(allowed_cpus()), own)


_START = snapshot()  # taken when the runtime is first imported: the window of free_cpus starts here


def free_cpus(since: Snapshot | None = None, min_window: float = MIN_WINDOW_S) -> float:
    """CPUs (of the allowed ones) that other processes left idle since `since` (default: import time).

    Waits until `min_window` seconds have passed since it. Falls back to the 1-minute load average where
    /proc/stat is missing.
    """
    start = since or _START
    n = len(allowed_cpus())
    wait = min_window - (time.monotonic() - start.at)
    if wait > 0:
        time.sleep(wait)
    now = snapshot()
    if start.busy is None or now.busy is None:
        try:
            return max(0.0, n - os.getloadavg()[0])
        except OSError:
            return float(n)
    elapsed = now.at - start.at
    others = max(0.0, (now.busy - start.busy) - (now.own - start.own))
    return max(0.0, n - others / elapsed)


def threads_for(free: float, allowed: int) -> int:
    """The thread count for `free` idle CPUs out of `allowed`: never fewer than 1, never more than allowed."""
    return max(1, min(allowed, int(free + (1 - FREE_SHARE))))


CONFIRM_WINDOW_S = 0.15  # the second look, taken only when the first saw load


@functools.lru_cache(maxsize=1)
def measured_free() -> float:
    """free_cpus() since import, measured once per process (every caller then agrees), and confirmed.

    The first window spans this process's start-up, and short work of others reads as load in it: the
    program at the other end of `ggufkit run ... | prog` starting up, or ticks of our own busy start-up
    counted to another (/proc/stat samples per tick, os.times() does not). Taken for load, that cost
    ~40 % of a 2-core machine's speed: one thread instead of two, or libgomp's short spin (openmp.py).
    So a window that saw load is looked at again while this process sleeps, and the larger figure is
    kept: a busy neighbour shows in both windows, a start-up in the first only.
    """
    free, n = free_cpus(), len(allowed_cpus())
    if threads_for(free, n) < n:
        free = max(free, free_cpus(snapshot(), CONFIRM_WINDOW_S))
    return free


def default_threads() -> int:
    """One thread per free allowed CPU."""
    n = len(allowed_cpus())
    return 1 if n <= 1 else threads_for(measured_free(), n)
