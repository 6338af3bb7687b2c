"""llama.cpp's libraries are loaded into the process before numpy, whatever the entry point.

A CUDA build of llama.cpp crashed (SIGSEGV inside `llama_model_load_from_file`, on the CPU as well as
with layers offloaded) in any process that had imported numpy — and so gguf-py, which every reader of
ours uses — before llama.cpp's shared libraries; with llama.cpp loaded first the same commands work.
Which of numpy's native libraries clashes is in the section "Load order" of docs/gpu.md; what matters
here is that the order is not a habit of some commands but a property of the package: importing
`ggufkit` (which every entry point does first: the console script, `python -m ggufkit`, the child
processes, library use) puts a finder at the front of `sys.meta_path` that, at the first import of
numpy, dlopens libllama — and with it libggml and its backends, CUDA's runtime included — and then
lets numpy load.

Only the shared library is loaded, by the path llama-cpp-python itself opens (`llama_cpp/lib`, or
LLAMA_CPP_LIB_PATH), not its Python package: dlopen of the same path later returns this same handle,
and `import llama_cpp` (jinja2, its high-level API: ~0.3 s) stays with the commands that run a model.
libgomp reads its settings when it is loaded with libllama, so runtime/openmp.py must configure it
before numpy is first imported; `loaded()` tells it whether that moment has passed.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.util
import os
import sys
import warnings
from pathlib import Path

from ggufkit.importhooks import spec_then

_state: dict[str, object] = {"handle": None, "error": None}
# llama.cpp's (and ggml's) log until runtime/llama_log.py routes it: a CUDA build prints its devices the first
# time the backends are listed (`ggml_cuda_init: found 1 CUDA devices`), which must not reach the user's
# stderr ahead of a command's one line; the lines are kept here for --verbose-llama
EARLY_LOG: list[str] = []
_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_keep_log = _LOG_FN(lambda _level, text, _user: EARLY_LOG.append((text or b"").decode("utf-8", "replace")))


def library_dir() -> Path | None:
    """The folder llama-cpp-python loads libllama from, found without importing it."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def load() -> None:
    """dlopen libllama once (its dependencies come with it). A failure is kept, not raised: llama_cpp's own
    import reports it where a command needs llama.cpp, and commands that do not still work."""
    if _state["handle"] is not None or _state["error"] is not None:
        return
    folder = library_dir()
    path = folder / "libllama.so" if folder is not None else None
    if path is None or not path.exists():
        _state["error"] = f"no libllama.so in {folder}"
        return
    try:
        # RTLD_NOW: every symbol of libllama and its libraries is bound now, while they are alone in the process
        # (docs/gpu.md, "Load order"); llama_cpp's own dlopen of this path later returns the same handle
        handle = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as e:
        _state["error"] = str(e)
        return
    log_set = getattr(handle, "llama_log_set", None)
    if log_set is not None:
        log_set.restype, log_set.argtypes = None, [_LOG_FN, ctypes.c_void_p]
    _state["handle"] = handle
    capture_early_log()


def loaded() -> bool:
    """Whether llama.cpp's libraries are in the process (so libgomp has read its environment)."""
    return _state["handle"] is not None or "llama_cpp" in sys.modules


class _LlamaBeforeNumpy(importlib.abc.MetaPathFinder):
    """Finds nothing of its own: at the first import of numpy it loads llama.cpp; when llama-cpp-python's
    `_logger` module is imported, it hands back that module's spec with a loader that puts the early capture
    back once the module has run (it sets a log callback that prints every line to stderr, and llama.cpp
    logs as soon as the backends are listed: `ggml_cuda_init: found 1 CUDA devices` ahead of a command's
    one-line error). Once both have happened it steps aside."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname == "numpy" or fullname.startswith("numpy."):
            _state["numpy"] = True
            load()
        elif fullname == _LLAMA_LOGGER:
            _state["logger"] = True
            _step_aside_when_done()
            # its log callback prints every line to stderr: llama.cpp's log back to EARLY_LOG (until
            # runtime/llama_log.py routes it for good)
            return spec_then(fullname, path, lambda _module: capture_early_log())
        _step_aside_when_done()
        return None


_LLAMA_LOGGER = "llama_cpp._logger"


def capture_early_log() -> None:
    """llama.cpp's log to EARLY_LOG (where it goes from the moment libllama is loaded here)."""
    handle = _state["handle"]
    log_set = getattr(handle, "llama_log_set", None) if handle is not None else None
    if log_set is not None:
        log_set(_keep_log, None)


def _step_aside_when_done() -> None:
    if _state.get("numpy") and _state.get("logger"):
        uninstall()


_finder = _LlamaBeforeNumpy()


def uninstall() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def install() -> None:
    """Called once, by `import ggufkit`. GGUFKIT_NO_LLAMA=1: a process that never loads a model and must not
    have llama.cpp's libraries in it (the chart renderer, evaluate/plot.py)."""
    if loaded() or _finder in sys.meta_path or os.environ.get("GGUFKIT_NO_LLAMA") == "1":
        return
    if "numpy" in sys.modules:  # a program that imported numpy before ggufkit: too late to choose
        folder = library_dir()
        if folder is not None and any(folder.glob("libggml-cuda*")):
            warnings.warn("numpy was imported before ggufkit: with a CUDA build of llama.cpp, import ggufkit "
                          "(or llama_cpp) first, or model loading may crash (docs/gpu.md, 'Load order')",
                          RuntimeWarning, stacklevel=3)
        return
    sys.meta_path.insert(0, _finder)
