"""Legacy inputs to `run`, `bench` and `quantize`: converted once into a cache, reused while unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ggufkit.formats.detect import sniff


def cache_dir() -> Path:
    base = os.environ.get("GGUFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ggufkit")
    return Path(base) / "converted"


def ensure_gguf(path: Path, on_notice: Callable[[str], None] | None = None) -> Path:
    """`path` itself if it is GGUF; for a GGJT v3 file, its GGUF conversion (made on first use)."""
    if sniff(path) == "gguf":
        return path
    from ggufkit.converters.ggjt import convert_ggjt, open_ggjt3

    open_ggjt3(path)  # a clear error for anything that cannot convert, before touching the cache
    st = path.stat()
    from ggufkit import __version__
    from ggufkit.errors import BadInputError
    from ggufkit.formats.gguf_file import read_gguf

    ident = f"{__version__}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    out = cache_dir() / f"{path.name.split('.')[0]}-{hashlib.sha256(ident.encode()).hexdigest()[:20]}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_ggjt(path, out, force=True)
        try:  # what the legacy file holds may still be unfit for llama.cpp (e.g. its vocabulary)
            read_gguf(out)
        except BadInputError as e:
            out.unlink(missing_ok=True)
            raise BadInputError(e.message, path) from None
        if on_notice is not None:  # after success, so a failure is one line, not a notice and an error
            on_notice(f"{path}: legacy GGJT v3 file, converted once to {out} (reused next time)")
    return out
