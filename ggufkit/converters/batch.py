"""Convert many legacy files: plan output names (clashes found before any work), skip what exists, keep
going past failures, and stop promptly when interrupted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from ggufkit.converters.engine import Cancelled, ConvertReport, NotConvertible, ProgressFn, convert_legacy
from ggufkit.converters.metadata import ConvertOptions
from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.formats.listing import folder_files, kind
from ggufkit.names import gguf_name

BatchItem = ConvertReport  # one schema for one file and a batch (`convert --json`)


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to convert, files passed over). Files named are converted (one that is not a legacy model then
    fails, with its reason); a directory stands for the legacy model files directly inside it, and its other
    files (GGUF, text, ...) are passed over, listed as skipped, not failed. A file named twice (or named and
    in a directory named) is converted once."""
    files: list[Path] = []
    passed: list[Path] = []
    for p in inputs:
        if p.is_dir():
            listed = folder_files(p)
            found = [f for f in listed if kind(f) == "legacy"]
            if not found:
                raise BadInputError("a directory stands for the legacy model files (GGML, GGMF, GGJT) directly "
                                    "inside it, and this one holds none", p)
            files.extend(found)
            passed.extend(f for f in listed if f not in found)
        else:
            files.append(p)
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, passed


def find_clashes(files: list[Path], target: Path) -> list[tuple[Path, Path, Path]]:
    """(first input, later input, output) for each input whose output name an earlier input's has already
    (llama-ggml-q4_0.bin and llama-q4_0.bin both make llama-q4_0.gguf)."""
    first: dict[str, Path] = {}
    clashes = []
    for f in files:
        name = gguf_name(f)
        if name in first:
            clashes.append((first[name], f, target / name))
        else:
            first[name] = f
    return clashes


def clash_error(clashes: list[tuple[Path, Path, Path]]) -> BadInputError:
    a, b, out = clashes[0]
    more = f" (and {len(clashes) - 1} more clash{'es' * (len(clashes) > 2)})" if len(clashes) > 1 else ""
    return BadInputError(f"{a} and {b} would both be written to {out}{more}: nothing was converted; pass "
                         "--distinct-names to name the later one NAME-2.gguf, or convert them apart")


def plan_outputs(files: list[Path], target: Path, distinct: bool = False) -> list[tuple[Path, Path]]:
    """(input, output) pairs in `target`, found before any work. Inputs whose outputs would have the same
    name are refused, naming both, unless `distinct`: then the later ones get NAME-2.gguf, NAME-3.gguf, …
    (a name no other input's output has)."""
    clashes = find_clashes(files, target)
    if clashes and not distinct:
        raise clash_error(clashes)
    later = {id(b) for _, b, _ in clashes}
    taken = {gguf_name(f) for f in files}
    pairs = []
    for f in files:
        name = gguf_name(f)
        if id(f) in later:
            stem, n = name.removesuffix(".gguf"), 2
            while f"{stem}-{n}.gguf" in taken:
                n += 1
            name = f"{stem}-{n}.gguf"
            taken.add(name)
        pairs.append((f, target / name))
    return pairs


def planned_bytes(src: Path) -> int:
    """For progress bars: the file's size (its tensor data plus a small header), without reading it twice."""
    try:
        return src.stat().st_size
    except OSError:
        return 0


def failed(src: Path, out: Path, e: GgufkitError, seconds: float = 0.0) -> BatchItem:
    """A file's failure as its report: the message, naming the file it is about where that is not the input."""
    why = e.message if e.path in (None, str(src)) else str(e)
    return ConvertReport(str(src), str(out), "failed", why, seconds=seconds)


def convert_batch(pairs: list[tuple[Path, Path]], options: ConvertOptions, jobs: int = 1, force: bool = False,
                  on_progress: ProgressFn | None = None,
                  on_done: Callable[[BatchItem], None] | None = None) -> list[BatchItem]:
    """Each pair converted (or skipped, or failed with its reason), `jobs` at a time; `on_done` hears of each
    as it ends. Interrupted (KeyboardInterrupt in the calling thread), the files in progress stop at their
    next chunk, their outputs are not written, they are reported to `on_done` as "interrupted", and the
    KeyboardInterrupt goes on to the caller once they have stopped (well within a second)."""
    cancel = threading.Event()

    def one(pair: tuple[Path, Path]) -> BatchItem | None:
        if cancel.is_set():
            return None  # not started
        src, out = pair
        started = time.perf_counter()
        if out.exists() and not force:
            item = ConvertReport(str(src), str(out), "skipped", "output exists (--force overwrites)")
        else:
            try:
                item = convert_legacy(src, out, options, force=force, on_progress=on_progress, cancel=cancel)
            except NotConvertible as e:
                item = ConvertReport(str(src), str(out), "skipped", f"inspect only: {e.why}")
            except GgufkitError as e:
                item = failed(src, out, e, time.perf_counter() - started)
            except (Cancelled, KeyboardInterrupt):
                item = ConvertReport(str(src), str(out), "interrupted", "nothing written",
                                     seconds=time.perf_counter() - started)
                if on_done is not None:
                    on_done(item)
                raise KeyboardInterrupt from None
        if on_done is not None:
            on_done(item)
        return item

    if jobs <= 1:
        return [item for item in map(one, pairs) if item is not None]
    # copy_file_range releases the GIL, so threads overlap the I/O of several files
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, p) for p in pairs]
        try:
            pending = set(futures)
            while pending:  # a Ctrl-C that another thread took (a worker, OpenBLAS's) is heard here at the next turn
                pending = wait(pending, timeout=0.1).not_done
            return [item for item in (f.result() for f in futures) if item is not None]
        except KeyboardInterrupt:
            cancel.set()
            for f in futures:
                f.cancel()
            wait(futures)  # the running ones end at their next chunk
            raise

