"""Legacy inputs to `run`, `bench` and `quantize`: converted once into a cache, reused while unchanged.

Entries are keyed on content, not on path or mtime, so a remade byte-identical file (or a copy of one
under another name) reuses its conversion instead of adding another copy. The key hashes the size,
the first MiB (header, hparams, vocabulary) and 64 KiB blocks sampled evenly through the rest, of
every part of a multi-part model: a few MiB read whatever the model's size, where a full hash would
read gigabytes on every run. The cache is capped (GGUFKIT_CACHE_MAX, default 10 GiB); after each new
conversion the least recently used entries go until it fits. A hit marks its entry used (mtime).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.formats.detect import sniff
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.fsutil import make_dir
from ggufkit.units import parse_bytes

NoticeFn = Callable[[str], None]

DEFAULT_MAX_BYTES = 10 << 30
HEAD_BYTES = 1 << 20
SAMPLE_BYTES = 64 << 10
SAMPLES = 64
MAX_PARTS = 64  # as formats/legacy/parts.py
_SUFFIX = ".gguf"


def cache_dir() -> Path:
    base = os.environ.get("GGUFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ggufkit")
    return Path(base) / "converted"


def max_bytes() -> int:
    """The cap: GGUFKIT_CACHE_MAX (e.g. `2GiB`, `500M`, `0` keeps only the entry in use), else 10 GiB."""
    text = os.environ.get("GGUFKIT_CACHE_MAX")
    if not text:
        return DEFAULT_MAX_BYTES
    n = parse_bytes(text)
    if n is None:
        raise BadInputError(f"GGUFKIT_CACHE_MAX: {text!r} is not a size (e.g. 10GiB, 500M)")
    return n


def content_key(path: Path) -> str:
    """A hash of what a conversion of `path` depends on: ggufkit's version and each part's sampled content."""
    from ggufkit import __version__

    h = hashlib.blake2b(digest_size=16)
    h.update(__version__.encode())
    for i in range(MAX_PARTS):
        part = path if i == 0 else Path(f"{path}.{i}")  # NAME.bin.1, .2 … beside it (parts.part_path)
        if i and not part.exists():
            break
        _hash_file(h, part)
    return h.hexdigest()


def _hash_file(h: "hashlib._Hash", path: Path) -> None:
    size = path.stat().st_size
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= HEAD_BYTES + SAMPLES * SAMPLE_BYTES:
            h.update(f.read())
            return
        h.update(f.read(HEAD_BYTES))
        span = size - HEAD_BYTES - SAMPLE_BYTES
        for i in range(SAMPLES):  # the last sample ends at the end of the file
            f.seek(HEAD_BYTES + span * i // (SAMPLES - 1))
            h.update(f.read(SAMPLE_BYTES))


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    last_used: float  # seconds since the epoch

    @property
    def source_name(self) -> str:
        """The input's name as far as the entry's name keeps it (`tiny-<key>.gguf` -> `tiny`)."""
        return self.path.name[: -len(_SUFFIX)].rsplit("-", 1)[0]

    @property
    def key(self) -> str:
        """The content key (`tiny-<key>.gguf` -> `<key>`)."""
        return self.path.name[: -len(_SUFFIX)].rsplit("-", 1)[-1]


def entries(folder: Path | None = None) -> list[Entry]:
    """The cache's conversions, least recently used first."""
    folder = folder or cache_dir()
    found = []
    for p in folder.glob(f"*{_SUFFIX}") if folder.is_dir() else ():
        try:
            st = p.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        found.append(Entry(p, st.st_size, st.st_mtime))
    return sorted(found, key=lambda e: (e.last_used, e.path.name))


def evict(limit: int, keep: Path | None = None, folder: Path | None = None) -> list[Entry]:
    """Remove least recently used entries (never `keep`) until the cache holds at most `limit` bytes."""
    listed = entries(folder)
    total = sum(e.size for e in listed)
    removed = []
    for e in listed:
        if total <= limit:
            break
        if keep is not None and e.path == keep:
            continue
        e.path.unlink(missing_ok=True)
        total -= e.size
        removed.append(e)
    return removed


def clear(folder: Path | None = None) -> list[Entry]:
    """Remove every conversion (and any `.part` a killed conversion left)."""
    folder = folder or cache_dir()
    listed = entries(folder)
    for e in listed:
        e.path.unlink(missing_ok=True)
    for part in folder.glob(".*.part") if folder.is_dir() else ():
        part.unlink(missing_ok=True)
    return listed


MIN_KEY_PREFIX = 4


def remove(what: str, folder: Path | None = None) -> list[Entry]:
    """Remove the entries `what` names: a source name (`tiny`: every conversion of files so named), a key or
    its first MIN_KEY_PREFIX+ hex digits (as `cache list` shows them), or an entry's file name. Raises
    BadInputError if it names none, or if a key prefix is ambiguous."""
    listed = entries(folder)
    chosen = [e for e in listed if what in (e.source_name, e.path.name)]
    if not chosen and len(what) >= MIN_KEY_PREFIX and all(c in "0123456789abcdef" for c in what.lower()):
        chosen = [e for e in listed if e.key.startswith(what.lower())]
        if len(chosen) > 1:
            raise BadInputError(f"key prefix {what!r} is ambiguous: {len(chosen)} entries start with it; give more "
                                "of the key")
    if not chosen:
        raise BadInputError(f"no cached conversion is named {what!r} (a source name, a key or a key's first "
                            f"{MIN_KEY_PREFIX}+ digits, or a file name: see `ggufkit cache list`)")
    for e in chosen:
        e.path.unlink(missing_ok=True)
    return chosen


def prune(older_than: float, folder: Path | None = None, now: float | None = None) -> list[Entry]:
    """Remove the entries not used for more than `older_than` seconds (a use marks an entry's mtime)."""
    limit = (time.time() if now is None else now) - older_than
    old = [e for e in entries(folder) if e.last_used < limit]
    for e in old:
        e.path.unlink(missing_ok=True)
    return old


def convert_checked(src: Path, out: Path, on_notice: NoticeFn | None = None) -> tuple[GgufFile, str]:
    """Convert a legacy file to `out` and read the result back with our GGUF reader: what the legacy file
    holds may still be unfit for llama.cpp (e.g. its vocabulary). Errors name `src`, not the output.
    Returns the output's header and the input's format (e.g. "GGJT v1")."""
    from ggufkit.converters.engine import convert_legacy, open_convertible

    opened = open_convertible(src)  # a file that cannot convert fails here, before any work
    report = convert_legacy(src, out, force=True, opened=opened)
    try:
        g = read_gguf(out)
    except BadInputError as e:
        out.unlink(missing_ok=True)
        raise BadInputError(e.message, src) from None
    for w in report.warnings if on_notice is not None else ():
        on_notice(f"warning: {src}: {w}")
    return g, opened[0].label


def open_as_gguf(path: Path, on_notice: NoticeFn | None = None) -> tuple[Path, GgufFile]:
    """(path, its header) if GGUF; for a legacy file, its GGUF conversion (made on first use, then reused)."""
    if sniff(path) == "gguf":
        return path, read_gguf(path)
    limit = max_bytes()
    key = content_key(path)
    folder = cache_dir()
    hit = next(iter(folder.glob(f"*-{key}{_SUFFIX}")), None) if folder.is_dir() else None
    if hit is not None:
        try:
            os.utime(hit)  # used now: the last to be evicted
        except OSError:  # a read-only cache still serves
            pass
        return hit, read_gguf(hit)
    out = folder / f"{path.name.split('.')[0]}-{key}{_SUFFIX}"
    make_dir(folder)
    g, label = convert_checked(path, out, on_notice)
    removed = evict(limit, keep=out, folder=folder)
    if on_notice is not None:  # after success, so a failure is one line, not a notice and an error
        on_notice(f"{path}: legacy {label} file, converted once to {out} (reused next time)")
        if removed:
            on_notice(f"conversion cache: removed {len(removed)} least recently used file(s) to stay under "
                      f"{limit / (1 << 30):.2f} GiB (GGUFKIT_CACHE_MAX)")
    return out, g
