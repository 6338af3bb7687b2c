"""Convert many legacy files: plan output names, skip what exists, keep going past failures."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ggufkit.converters.engine import ConvertReport, ProgressFn, convert_legacy
from ggufkit.converters.metadata import ConvertOptions
from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.formats.detect import sniff


@dataclass
class BatchItem:
    input: str
    output: str
    status: str  # "converted" | "skipped" | "failed"
    message: str = ""
    file_type: str | None = None
    bytes: int = 0
    seconds: float = 0.0


def output_name(src: Path) -> str:
    """llama-2-7b.ggmlv3.q4_0.bin -> llama-2-7b.q4_0.gguf"""
    name = re.sub(r"\.bin$", "", src.name, flags=re.IGNORECASE)
    name = re.sub(r"[.-]ggml(v\d)?(?=[.-]|$)", "", name, flags=re.IGNORECASE)
    return name + ".gguf"


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; a directory stands for the legacy model files directly inside it."""
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and not _is_extra_part(f) and _is_legacy(f))
            if not found:
                raise BadInputError("no legacy GGML/GGJT model files in this directory", p)
            files.extend(found)
        else:
            files.append(p)
    return files


def _is_extra_part(path: Path) -> bool:
    """`model.bin.1`, `.2`, ... beside `model.bin`: read as parts of it, not converted on their own."""
    stem, _, index = path.name.rpartition(".")
    return index.isdigit() and (path.parent / stem).is_file()


def _is_legacy(path: Path) -> bool:
    try:
        return sniff(path) == "legacy"
    except GgufkitError:
        return False


def planned_bytes(src: Path) -> int:
    """For progress bars: the file's size (its tensor data plus a small header), without reading it twice."""
    try:
        return src.stat().st_size
    except OSError:
        return 0


def convert_batch(pairs: list[tuple[Path, Path]], options: ConvertOptions, jobs: int = 1, force: bool = False,
                  on_progress: ProgressFn | None = None,
                  on_done: Callable[[BatchItem], None] | None = None) -> list[BatchItem]:
    def one(pair: tuple[Path, Path]) -> BatchItem:
        src, out = pair
        started = time.perf_counter()
        if out.exists() and not force:
            item = BatchItem(str(src), str(out), "skipped", "output exists (--force overwrites)")
        else:
            try:
                r: ConvertReport = convert_legacy(src, out, options, force=force, on_progress=on_progress)
                item = BatchItem(str(src), str(out), "converted", "", r.file_type, r.bytes, r.seconds)
            except GgufkitError as e:
                item = BatchItem(str(src), str(out), "failed", e.message, None, 0, time.perf_counter() - started)
        if on_done is not None:
            on_done(item)
        return item

    if jobs <= 1:
        return [one(p) for p in pairs]
    # copy_file_range releases the GIL, so threads overlap the I/O of several files
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, pairs))

