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
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    out = cache_dir() / f"{path.name.split('.')[0]}-{key}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        if on_notice is not None:
            on_notice(f"{path}: legacy GGJT v3 file, converting once to {out}")
        convert_ggjt(path, out, force=True)
    return out
