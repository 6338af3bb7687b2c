"""Convert many legacy files: plan output names, skip what exists, keep going past failures."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ggufkit.converters.engine import ConvertReport, ProgressFn, convert_legacy
from ggufkit.converters.metadata import ConvertOptions
from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.formats.detect import sniff


BatchItem = ConvertReport  # one schema for one file and a batch (`convert --json`)


def output_name(src: Path) -> str:
    """llama-2-7b.ggmlv3.q4_0.bin -> llama-2-7b.q4_0.gguf"""
    name = re.sub(r"\.bin$", "", src.name, flags=re.IGNORECASE)
    name = re.sub(r"[.-]ggml(v\d)?(?=[.-]|$)", "", name, flags=re.IGNORECASE)
    return name + ".gguf"


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to convert, files passed over). Files named are converted (one that is not a legacy model then
    fails, with its reason); a directory stands for the legacy model files directly inside it, and its other
    files (GGUF, text, ...) are passed over, listed as skipped, not failed. Extra parts (NAME.bin.1 beside
    NAME.bin) are read with their first part; hidden files are ignored."""
    files: list[Path] = []
    passed: list[Path] = []
    for p in inputs:
        if p.is_dir():
            listed = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and not _is_extra_part(f))
            found = [f for f in listed if _is_legacy(f)]
            if not found:
                raise BadInputError("a directory stands for the legacy model files (GGML, GGMF, GGJT) directly "
                                    "inside it, and this one holds none", p)
            files.extend(found)
            passed.extend(f for f in listed if f not in found)
        else:
            files.append(p)
    return files, passed


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
            item = ConvertReport(str(src), str(out), "skipped", "output exists (--force overwrites)")
        else:
            try:
                item = convert_legacy(src, out, options, force=force, on_progress=on_progress)
            except GgufkitError as e:
                item = ConvertReport(str(src), str(out), "failed", e.message, seconds=time.perf_counter() - started)
        if on_done is not None:
            on_done(item)
        return item

    if jobs <= 1:
        return [one(p) for p in pairs]
    # copy_file_range releases the GIL, so threads overlap the I/O of several files
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, pairs))

