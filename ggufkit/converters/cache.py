"""Legacy inputs to `run`, `bench` and `quantize`: converted once into a cache, reused while unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.formats.detect import sniff
from ggufkit.formats.gguf_file import GgufFile, read_gguf

NoticeFn = Callable[[str], None]


def cache_dir() -> Path:
    base = os.environ.get("GGUFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ggufkit")
    return Path(base) / "converted"


def convert_checked(src: Path, out: Path) -> tuple[GgufFile, str]:
    """Convert a legacy file to `out` and read the result back with our GGUF reader: what the legacy file
    holds may still be unfit for llama.cpp (e.g. its vocabulary). Errors name `src`, not the output.
    Returns the output's header and the input's format (e.g. "GGJT v1")."""
    from ggufkit.converters.engine import convert_legacy, open_convertible

    opened = open_convertible(src)  # a file that cannot convert fails here, before any work
    convert_legacy(src, out, force=True, opened=opened)
    try:
        return read_gguf(out), opened[0].label
    except BadInputError as e:
        out.unlink(missing_ok=True)
        raise BadInputError(e.message, src) from None


def open_as_gguf(path: Path, on_notice: NoticeFn | None = None) -> tuple[Path, GgufFile]:
    """(path, its header) if GGUF; for a legacy file, its GGUF conversion (made on first use, then reused)."""
    if sniff(path) == "gguf":
        return path, read_gguf(path)
    from ggufkit import __version__

    st = path.stat()
    ident = f"{__version__}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    out = cache_dir() / f"{path.name.split('.')[0]}-{hashlib.sha256(ident.encode()).hexdigest()[:20]}.gguf"
    if out.exists():
        return out, read_gguf(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    g, label = convert_checked(path, out)
    if on_notice is not None:  # after success, so a failure is one line, not a notice and an error
        on_notice(f"{path}: legacy {label} file, converted once to {out} (reused next time)")
    return out, g
