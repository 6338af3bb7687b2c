"""ggml functions that llama-cpp-python does not bind, looked up in the libraries llama.cpp really uses.

Wheels store libggml-base.so, .so.0 and .so.0.x as three copies, not symlinks, so opening one of them
by file name loads a second, separate ggml whose globals (the abort callback, the CPU threads) the
running model never sees. Resolving through libllama's own handle reaches the copies it loaded.
"""

from __future__ import annotations

import ctypes


def symbol(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """A C function of the loaded llama.cpp (libllama or the ggml libraries it loaded), or None."""
    import llama_cpp.llama_cpp as low

    lib = getattr(low, "_lib", None)
    try:
        # lib[name] makes a function pointer of our own; lib.name is the object llama-cpp-python bound and
        # typed already, which setting restype here would change under it
        fn = lib[name] if lib is not None else None
    except AttributeError:
        return None
    if fn is None:
        return None
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn
