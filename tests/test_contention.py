"""Thread count and wait policy on a busy machine (issue 17): measured, never assumed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ggufkit.runtime import cpuload, openmp


@pytest.mark.parametrize("free, allowed, threads", [
    (2.0, 2, 2), (1.8, 2, 2), (1.6, 2, 1), (1.0, 2, 1), (0.0, 2, 1), (15.9, 16, 16), (12.2, 16, 12), (40.0, 16, 16),
])
def test_threads_for_counts_cpus_that_are_mostly_free(free, allowed, threads):
    assert cpuload.threads_for(free, allowed) == threads


def test_busy_processes_on_every_cpu_leave_one_thread():
    n = len(cpuload.allowed_cpus())
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2)
        free = cpuload.free_cpus(cpuload.snapshot(), 0.5)
    finally:
        for p in loops:
            p.kill()
            p.wait()
    assert 0 <= free < 0.7 and cpuload.threads_for(free, n) == 1


def test_own_work_is_not_counted_as_load():
    start = cpuload.snapshot()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # this process keeps one CPU busy: that is not someone else's load
        pass
    free = cpuload.free_cpus(start)
    others = len(cpuload.allowed_cpus()) - free
    assert 0 <= free <= len(cpuload.allowed_cpus())
    busy_before = len(cpuload.allowed_cpus()) - cpuload.free_cpus(cpuload.snapshot(), 0.3)
    assert others <= busy_before + 0.6  # within the noise of others' load, not +1 CPU of our own


def test_work_of_our_own_children_is_not_counted_as_load():
    """fit quantizes in child processes, then measures speed: the children's CPU time is its own work, not
    another's load (counted as load, it read the quiet machine as full and measured at half speed)."""
    start = cpuload.snapshot()
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    assert cpuload.snapshot().own - start.own >= 0.35


def test_a_short_spin_only_when_threads_outnumber_free_cpus():
    n = len(cpuload.allowed_cpus())
    env: dict[str, str] = {}
    assert openmp.configure(n, float(n), env) is None and env == {}  # idle: libgomp's default spin
    assert openmp.configure(1, 0.0, env) is None  # one thread never waits at a barrier
    assert openmp.configure(n + 1, float(n), env) == "100" and env == {"GOMP_SPINCOUNT": "100"}
    user = {"OMP_WAIT_POLICY": "active"}
    assert openmp.configure(n + 1, 0.0, user) is None and user == {"OMP_WAIT_POLICY": "active"}


def test_threads_given_are_obeyed_and_the_default_fits_the_machine(cli, samples):
    model = samples.gguf("q4_0")
    forced = cli("run", model, "-p", "hi", "-n", "2", "-v", "-t", "3")
    assert forced.code == 0 and "threads 3," in forced.err
    default = cli("run", model, "-p", "hi", "-n", "2", "-v")
    n = int(default.err.split("threads ")[1].split(",")[0])
    assert 1 <= n <= len(cpuload.allowed_cpus())


def _confirmed_free(start: cpuload.Snapshot) -> float:
    cpuload.measured_free.cache_clear()
    saved = cpuload._START
    cpuload._START = start
    try:
        return cpuload.measured_free()
    finally:
        cpuload._START = saved
        cpuload.measured_free.cache_clear()


def test_a_neighbours_start_up_is_not_load():
    """`ggufkit run ... | prog`: prog starts beside run's own start-up. Read as load, it cost run one of two
    threads, or libgomp's short spin: ~40 % of its speed on 2 cores (measured: 0.13 of 0.3 s spent there)."""
    n = len(cpuload.allowed_cpus())
    quiet = cpuload.free_cpus(cpuload.snapshot(), 0.3)
    start = cpuload.snapshot()
    burst = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.1: pass"
    neighbours = [subprocess.Popen([sys.executable, "-c", burst]) for _ in range(n)]
    time.sleep(0.15)
    first = cpuload.free_cpus(start)  # what one window reads: every CPU looked busy
    free = _confirmed_free(start)
    for p in neighbours:
        p.wait()  # waited for only now: not counted as our own children's time above
    assert first < n - 0.3, f"the burst did not show in the first window ({first:.2f} of {n} free)"
    assert free >= min(quiet, n) - 0.3


def test_a_busy_neighbour_is_still_load_when_confirmed():
    n = len(cpuload.allowed_cpus())
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2)
        free = _confirmed_free(cpuload.snapshot())
    finally:
        for p in loops:
            p.kill()
            p.wait()
    assert 0 <= free < 0.7 and cpuload.threads_for(free, n) == 1


_THREAD_CPU = """
import atexit, os, sys
def report():
    tick = os.sysconf("SC_CLK_TCK")
    for t in os.listdir("/proc/self/task"):
        if int(t) != os.getpid():
            stat = open(f"/proc/self/task/{t}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            sys.stderr.write(f"THREAD {t} {(int(fields[11]) + int(fields[12])) / tick:.2f}\\n")
atexit.register(report)
from ggufkit.cli.app import main
main()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_no_thread_beside_llama_cpp_spins_at_start_up(samples):
    """numpy's OpenBLAS, loaded with llama_cpp, started a thread per core that spun ~0.1 s of CPU before it
    slept: on 2 cores a tenth of a second taken from llama.cpp's threads at every `run`. With one llama.cpp
    thread, no other thread may have done work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_", "GOTO"))}
    r = subprocess.run([sys.executable, "-c", _THREAD_CPU, "run", str(samples.gguf("q4_0")), "-p", "hi", "-n", "2",
                        "-t", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    busy = [line for line in r.stderr.splitlines() if line.startswith("THREAD") and float(line.split()[2]) >= 0.05]
    assert not busy, busy
