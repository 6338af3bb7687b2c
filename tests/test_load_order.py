"""llama.cpp's libraries are in the process before numpy, whatever is imported first (ggufkit/loadorder.py),
and a crash inside llama.cpp is one line, not a dead process (runtime/abort.py).

The order is read from the dynamic linker itself: `dl_iterate_phdr` walks the loaded objects in the order
they were loaded, and `LD_DEBUG=files` logs each load of a real command as it happens."""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
import textwrap

import pytest

import ggufkit.cli
from tests.conftest import assert_clean_error

COMMAND_MODULES = sorted(m.name for m in pkgutil.iter_modules(ggufkit.cli.__path__))

# Prints the loaded objects in load order, after importing the module named in argv[1] and then numpy.
_ORDER = textwrap.dedent("""
    import ctypes, importlib, sys
    importlib.import_module(sys.argv[1])
    import numpy, gguf  # what every reader imports, after whatever the module did
    class Info(ctypes.Structure):
        _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]
    names = []
    CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p)
    def visit(info, size, data):
        names.append((info.contents.name or b"").decode())
        return 0
    ctypes.CDLL(None).dl_iterate_phdr(CB(visit), None)
    print("\\n".join(names))
""")


def _first(names: list[str], pattern: str) -> int:
    return next(i for i, n in enumerate(names) if re.search(pattern, os.path.basename(n)))


@pytest.mark.parametrize("module", ["ggufkit", *(f"ggufkit.cli.{m}" for m in COMMAND_MODULES)])
def test_no_module_brings_numpy_before_llama_cpp(module):
    out = subprocess.run([sys.executable, "-c", _ORDER, module], capture_output=True, text=True, check=True).stdout
    names = out.splitlines()
    llama = _first(names, r"^libllama\.so")
    numpy_ext = _first(names, r"^_multiarray_umath")
    assert llama < numpy_ext, names
    blas = [i for i, n in enumerate(names) if "openblas" in os.path.basename(n)]
    assert all(llama < i for i in blas), names


def test_a_real_command_loads_llama_cpp_first(samples, tmp_path):
    """The console entry point, end to end: the linker's own log of `ggufkit eval` (the command that crashed)."""
    model = samples.gguf("q8_0")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 200)
    env = {**os.environ, "LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    r = subprocess.run([sys.executable, "-m", "ggufkit", "eval", str(model), "-f", str(text), "--ctx", "64",
                        "--chunks", "1", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    log = "".join(p.read_text() for p in tmp_path.glob("ld.*"))
    loads = re.findall(r"file=(\S+)\s+\[\d+\];\s+(?:dynamically loaded|needed)", log)
    order = [os.path.basename(f) for f in loads]
    assert order.index(next(n for n in order if n.startswith("libllama.so"))) < \
        order.index(next(n for n in order if n.startswith("_multiarray_umath"))), order


_CRASH = textwrap.dedent("""
    import ctypes, sys
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams
    model = load(LoadParams(sys.argv[1], n_ctx=64, warmup=False))
    import llama_cpp
    llama_cpp.llama_model_n_layer(ctypes.c_void_p(0))  # a NULL model: llama.cpp reads address 0
    print("not reached")
""")


def test_a_crash_inside_llama_cpp_is_one_line(samples):
    model = samples.gguf("q8_0")
    env = {**os.environ, "GGUFKIT_COMMAND": "run"}
    env.pop("GGUFKIT_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", _CRASH, str(model)], capture_output=True, text=True, env=env)
    from tests.conftest import Result

    assert_clean_error(Result(r.returncode, r.stdout, r.stderr), 1, f"run: {model}: llama.cpp crashed (SIGSEGV",
                       "--debug")
    assert "not reached" not in r.stdout


def test_with_debug_a_crash_keeps_its_signal_and_tracebacks(samples):
    model = samples.gguf("q8_0")
    env = {**os.environ, "GGUFKIT_DEBUG": "1"}
    r = subprocess.run([sys.executable, "-c", _CRASH, str(model)], capture_output=True, text=True, env=env)
    assert r.returncode == -11, (r.returncode, r.stderr)
    assert "Fatal Python error: Segmentation fault" in r.stderr
    assert "llama_model_n_layer" in r.stderr or "<string>" in r.stderr


def test_llama_cpp_python_import_does_not_send_llama_cpp_log_to_stderr():
    """llama-cpp-python's import sets a log callback that prints every line to stderr; a CUDA build logs its
    devices as soon as the backends are listed, which reached the user ahead of `fit`'s one-line error. The
    lines stay in the early capture until a command routes them (--verbose-llama replays them)."""
    code = textwrap.dedent("""
        import ggufkit, llama_cpp
        from ggufkit.loadorder import EARLY_LOG
        llama_cpp.llama_model_load_from_file(b"/nonexistent/model.gguf", llama_cpp.llama_model_default_params())
        print(sum("failed to load model" in line for line in EARLY_LOG))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert int(r.stdout) >= 1, r.stdout


def test_a_process_that_never_loads_a_model_can_opt_out():
    """GGUFKIT_NO_LLAMA=1 (the chart renderer): numpy without llama.cpp's libraries."""
    code = "import ggufkit, numpy, sys; print(any('libllama' in m for m in open('/proc/self/maps').read().split()))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "GGUFKIT_NO_LLAMA": "1"})
    assert r.stdout.strip() == "False", r.stdout + r.stderr


def test_charts_are_drawn_in_a_process_without_llama_cpp(tmp_path):
    """matplotlib's C++ extensions crashed beside a CUDA build of llama.cpp (eval --plot, fit --plot on an H100):
    every chart is drawn apart, in a process that never loads it."""
    from ggufkit.evaluate.plot import apart
    from tests.chart_probe import mapped_llama

    apart(mapped_llama, None, tmp_path / "probe")
    assert (tmp_path / "probe").read_text() == "False"
